"""A consent's expiry: it stops counting at its end, and the expiry job records it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from registry.consent import services as consents
from registry.consent.models import Consent
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER


@pytest.fixture
def no_confirmation(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )


@pytest.mark.usefixtures("no_confirmation")
def test_consent_counts_until_it_expires_and_the_job_ends_it(
    app: Flask, acme: Api, session: Session
) -> None:
    now = utcnow()
    # The end at 14:00 in Shanghai two days on: an hour before and after it lie inside the
    # calling hours whatever time the test runs (an end "now + 2 days" put them at night).
    ends = datetime.combine((now + timedelta(days=2)).date(), time(6), UTC)
    made = acme.post("/consents", {
        "phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "expires_at": ends.isoformat(),
        "evidence": {"method": "web_form", "captured_at": (now - timedelta(hours=1)).isoformat()},
    })  # fmt: skip
    assert made.status_code == 201, made.get_json()
    consent_id = made.get_json()["id"]
    before_end = (ends - timedelta(hours=1)).isoformat()
    after_end = (ends + timedelta(hours=1)).isoformat()
    assert acme.check(HOLDER, at=before_end)["reason"] == "consent"
    # A contact planned after the end is not covered, even while the consent is still active.
    assert acme.check(HOLDER, at=after_end)["decision"] == "deny"
    assert consents.expire_due(session, now) == 0  # not due yet
    assert consents.expire_due(session, ends + timedelta(seconds=1)) == 1
    session.commit()
    consent = session.get(Consent, consent_id)
    assert consent is not None
    assert consent.status == "expired"
    history = acme.get(f"/consents/{consent_id}").get_json()["history"]
    assert [h["type"] for h in history][-1] == "expired"
    assert acme.check(HOLDER, at=before_end)["decision"] == "deny"  # ended for good


def test_an_unconfirmed_consent_expires_at_the_end_of_its_pending_period(
    app: Flask, acme: Api, session: Session
) -> None:
    now = utcnow()
    made = acme.post("/consents", {
        "phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
        "evidence": {"method": "web_form", "captured_at": now.isoformat()},
    }).get_json()  # fmt: skip
    assert made["status"] == "pending"
    consent = session.get(Consent, made["id"])
    assert consent is not None
    assert consent.pending_until is not None
    assert consents.expire_due(session, consent.pending_until + timedelta(seconds=1)) == 1
    session.commit()
    assert acme.get(f"/consents/{made['id']}").get_json()["status"] == "expired"
