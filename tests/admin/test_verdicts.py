"""The complaint verdict, from the check log and the facts as of the contact time."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from registry.checks.verdict import Verdict, verdict_for_contact
from registry.config import Settings
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, World


@pytest.fixture
def settings(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Consents active at once; calling hours all day (these tests are not about the window)."""
    s = replace(
        app.config["REGISTRY"],
        require_confirmation=False,
        calling_hours=(time(0), time(23, 59, 59)),
    )
    monkeypatch.setitem(app.config, "REGISTRY", s)
    return s


def _consent(acme: Api) -> int:
    resp = acme.post("/consents", {
        "phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
        "evidence": {"method": "web_form", "captured_at": (utcnow() - timedelta(days=1)).isoformat(),
                     "wording": "Yes, text me card offers", "reference": "form-42"},
    })  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "active"
    return int(resp.get_json()["id"])


def _verdict(
    session: Session, settings: Settings, world: World, at, sender="acme-cards"
) -> Verdict:  # type: ignore[no-untyped-def]
    return verdict_for_contact(
        session, settings, phone=HOLDER, sender_id=world.sender_ids.get(sender),
        channel="sms", contacted_at=at,
    )  # fmt: skip


def test_unknown_sender(session: Session, settings: Settings, world: World) -> None:
    assert _verdict(session, settings, world, utcnow(), sender="nobody").code == "unknown_sender"


def test_no_check_when_the_sender_never_asked(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    contact = utcnow()
    acme.check(HOLDER)  # asked only after the contact: does not count
    v = _verdict(session, settings, world, contact)
    assert v.code == "no_check"
    assert v.at_contact is not None
    assert v.at_contact.reason == "no_consent"


def test_no_check_on_another_channel(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    acme.check(HOLDER, channel="voice")
    assert _verdict(session, settings, world, utcnow()).code == "no_check"


def test_contacted_despite_deny(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    assert acme.check(HOLDER)["reason"] == "no_consent"
    v = _verdict(session, settings, world, utcnow())
    assert v.code == "contacted_despite_deny"
    assert v.last_check is not None
    assert v.last_check.decision == "deny"
    assert v.verified


def test_allowed_shows_the_consent_evidence(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    consent_id = _consent(acme)
    assert acme.check(HOLDER)["reason"] == "consent"
    v = _verdict(session, settings, world, utcnow())
    assert v.code == "allowed"
    assert not v.verified
    assert v.consent is not None
    assert v.consent["id"] == consent_id
    assert v.consent["method"] == "web_form"
    assert v.consent["wording"] == "Yes, text me card offers"
    assert v.consent["reference"] == "form-42"


def test_consent_revoked_after_the_call_still_counts_for_it(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    consent_id = _consent(acme)
    acme.check(HOLDER)
    call = utcnow()
    assert acme.post(f"/consents/{consent_id}/revoke").status_code == 200
    v = _verdict(session, settings, world, call)
    assert v.code == "allowed"
    assert v.consent is not None
    assert v.consent["status_now"] == "revoked"
    # A call after the revocation is judged on the revocation.
    acme.check(HOLDER)
    assert _verdict(session, settings, world, utcnow()).code == "contacted_despite_deny"


def test_consent_given_after_the_call_does_not_count(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    acme.check(HOLDER)
    call = utcnow()
    _consent(acme)
    v = _verdict(session, settings, world, call)
    assert v.code == "contacted_despite_deny"
    assert v.at_contact is not None
    assert v.at_contact.reason == "no_consent"


def test_allow_that_changed_before_the_contact(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    _consent(acme)
    assert acme.check(HOLDER)["decision"] == "allow"
    acme.post(
        "/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    )
    v = _verdict(session, settings, world, utcnow())
    # Told allow, but at the contact time the holder had opted out.
    assert v.code == "contacted_despite_deny"
    assert v.last_check is not None
    assert v.last_check.decision == "allow"
    assert v.at_contact is not None
    assert v.at_contact.reason == "opted_out"


def test_verdict_codes_in_bulk_agree_with_one_by_one(
    session: Session, settings: Settings, world: World, acme: Api
) -> None:
    """The review's bulk verdicts give every complaint the code its own verdict gives."""
    from registry.complaints import desk
    from registry.complaints.models import Complaint

    moments = [utcnow()]  # before any check: no_check
    assert acme.check(HOLDER)["reason"] == "no_consent"
    moments.append(utcnow())  # told deny
    consent_id = _consent(acme)
    assert acme.check(HOLDER)["decision"] == "allow"
    moments.append(utcnow())  # told allow, consent on record: allowed
    acme.post(f"/consents/{consent_id}/revoke")
    moments.append(utcnow())  # told allow, revoked since: contacted despite deny
    acme.check(HOLDER, channel="voice")
    moments.append(utcnow())
    rows = []
    for at in moments:
        for code, channel in (
            ("acme-cards", "sms"),
            ("acme-cards", "voice"),
            ("shop-deals", "sms"),
        ):
            rows.append(Complaint(phone=HOLDER, address="10690000", channel=channel,
                                  sender_id=world.sender_ids[code], contacted_at=at))  # fmt: skip
    rows.append(Complaint(phone=HOLDER, address="10690000", channel="sms", contacted_at=utcnow()))
    session.add_all(rows)
    session.flush()
    one_by_one = {c.id: desk.verdict(session, settings, c).code for c in rows}
    assert desk.verdict_codes(session, settings, rows) == one_by_one
    # Every branch of the bulk path was taken.
    assert set(one_by_one.values()) == {
        "no_check", "contacted_despite_deny", "allowed", "unknown_sender",
    }  # fmt: skip
