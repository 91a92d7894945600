"""Property-based API testing from our own OpenAPI document (schemathesis), bounded.

Every operation is called with generated valid and invalid input through the
whole WSGI app, with the key of a sender (acme), a platform (shop) and a
carrier: any 5xx, undocumented status, response that breaks its schema, or
error outside the one envelope (SPEC §4) fails the test.

Two lanes: ``test_api_conforms`` runs in the default suite (a few examples
per operation and key); ``test_api_fuzz`` is the slow lane (marker ``fuzz``,
excluded from the default run, run by ``.ci/run``): at least 10,000 requests
in all, counted as the app answers them and asserted at the end.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask, request_finished
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import World

KEYS = ["acme", "shop", "carrier"]  # a sender, a platform, a carrier
FUZZ_EXAMPLES = 75  # per operation and key; with the coverage phase, > 10,000 requests in all
FUZZ_REQUESTS = 10_000


@pytest.fixture(params=KEYS)
def api_key(request: pytest.FixtureRequest, world: World) -> str:
    return world.keys[request.param]


@pytest.fixture
def api_schema(app: Flask, api_key: str):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.headers = {"Authorization": f"Bearer {api_key}"}  # type: ignore[attr-defined]
    # Invalid data that makes the request target over 4 KB is refused for its size
    # (414, documented on every operation, registry/edge.py), which is a rejection too.
    rejected = schema.config.checks.negative_data_rejection  # type: ignore[attr-defined]
    rejected.expected_statuses = [*rejected.expected_statuses, "414", "431"]
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


# A schema-valid request may still be refused for what the schema cannot say
# (an unknown sender code, a number that does not parse, evidence from the
# future): those are 422s by design, not failures.
EXCLUDED = [positive_data_acceptance]


def assert_envelope(response: Any) -> None:
    """Every error answers the one envelope: {"error": {"code", "message", "details"}}."""
    if response.status_code < 400:
        return
    headers = {k.lower(): v for k, v in response.headers.items()}
    kind = headers.get("content-type", "")
    if "text/plain" in str(kind):
        # The plain-text operations (check.txt) answer the envelope as one line.
        assert re.fullmatch(r"ERROR [a-z_]+ [^\n]*\n", response.text), response.text
        return
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str), body
    assert error["code"], body
    assert isinstance(error.get("message"), str), body
    assert isinstance(error.get("details"), list), body


def run(case: Any, key: str) -> None:
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {key}"}, excluded_checks=EXCLUDED
    )
    assert_envelope(response)


@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, api_key: str) -> None:  # type: ignore[no-untyped-def]
    run(case, api_key)


class Requests:
    """How many requests the app answered during the fuzz lane."""

    count = 0

    @classmethod
    def seen(cls, *_: Any, **__: Any) -> None:
        cls.count += 1


@pytest.fixture(scope="module")
def _count_requests(app: Flask) -> Iterator[None]:
    request_finished.connect(Requests.seen, app)
    yield
    request_finished.disconnect(Requests.seen, app)


@pytest.mark.fuzz
@pytest.mark.usefixtures("_count_requests")
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz(case, api_key: str) -> None:  # type: ignore[no-untyped-def]
    run(case, api_key)


@pytest.mark.fuzz
def test_api_fuzz_sent_enough_requests(capsys: pytest.CaptureFixture[str]) -> None:
    """Run after the fuzz lane (same module, later): it sent at least 10,000 requests."""
    with capsys.disabled():
        sys.stdout.write(f"\nfuzz lane: {Requests.count} requests answered\n")
    assert Requests.count >= FUZZ_REQUESTS, Requests.count
