"""Every answer carries its validity and the registry's data version (issue 18).

``valid_until`` (``REGISTRY_RESULT_VALIDITY``: by default the moment of the
check, "check again before each contact"; ``21d``/``31d`` as DNC-style
registries grant) and ``data_version`` (the change-feed position) are in the
single check, the batch and both receipts, signed, beside the fields that
were there before.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from registry.checks import receipts
from registry.checks.services import valid_until_of
from registry.config import ConfigError, load_settings
from registry.timeutil import iso, utcnow
from tests.conftest import TEST_ENV, Api
from tests.factories import HOLDER


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_by_default_an_answer_holds_only_when_it_was_given(acme: Api) -> None:
    answer = acme.check(HOLDER)
    assert answer["valid_until"] == answer["checked_at"]
    assert isinstance(answer["data_version"], int)
    receipt = acme.get(f"/receipts/{answer['check_id']}").get_json()
    assert receipt["valid_until"] == answer["valid_until"]
    assert receipt["data_version"] == receipt["registry_seq"] == answer["data_version"]
    assert {"phone", "sender", "channel", "decision", "reason", "checked_at"} <= set(receipt)
    batch = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER]}
    )
    body = batch.get_json()
    assert body["valid_until"] == body["checked_at"]
    assert isinstance(body["data_version"], int)
    signed = acme.get(f"/receipts/{body['check_id']}").get_json()
    assert (signed["valid_until"], signed["data_version"]) == (
        body["valid_until"], body["data_version"],
    )  # fmt: skip


def test_a_31_day_validity_is_signed_into_receipts(app: Flask) -> None:
    settings = replace(app.config["REGISTRY"], result_validity=timedelta(days=31))
    now = utcnow()
    assert valid_until_of(settings, now) - now == timedelta(days=31)
    claims = receipts.Claims("acme-cards", "sms", "marketing", iso(now), 7, log_id=1,
                             phone=HOLDER, decision="allow", reason="consent",
                             valid_until=iso(valid_until_of(settings, now)))  # fmt: skip
    read = receipts.verify(settings, receipts.sign(settings, claims))
    assert _t(read.valid_until or "") - _t(read.checked_at) == timedelta(days=31)
    assert read.registry_seq == 7


@pytest.mark.parametrize(("raw", "days"), [("contact", 0), ("21d", 21), ("31d", 31), (" 31D ", 31)])
def test_the_validity_setting(tmp_path: Path, raw: str, days: int) -> None:
    settings = load_settings(tmp_path, {**TEST_ENV, "REGISTRY_RESULT_VALIDITY": raw})
    assert settings.result_validity == timedelta(days=days)


@pytest.mark.parametrize("raw", ["31", "0d", "forever", "-1d", "1000d"])
def test_a_bad_validity_names_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="REGISTRY_RESULT_VALIDITY"):
        load_settings(tmp_path, {**TEST_ENV, "REGISTRY_RESULT_VALIDITY": raw})
