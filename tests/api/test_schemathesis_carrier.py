"""The numbers operations under generated input, with a carrier's key (schemathesis, bounded).

The general conformance test calls every operation as a sender, which the
carrier operations refuse at once (403); here a carrier that holds ranges
reaches their validation, ranges and retraction logic.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from tests.api.test_schemathesis import EXCLUDED
from tests.factories import World


@pytest.fixture
def carrier_schema(app: Flask, world: World):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # A request target over 4 KB is refused for its size (414, registry/edge.py): a rejection too.
    rejected = schema.config.checks.negative_data_rejection  # type: ignore[attr-defined]
    rejected.expected_statuses = [*rejected.expected_statuses, "414", "431"]
    return schema


schema = schemathesis.pytest.from_fixture("carrier_schema")


@schema.include(path_regex="^/api/v1/numbers/").parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_numbers_conform_for_a_carrier(case, world: World) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {world.keys['carrier']}"}, excluded_checks=EXCLUDED
    )
