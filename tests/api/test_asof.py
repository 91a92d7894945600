"""The decision at a past time T, rebuilt from the event log."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from registry.checks import asof
from registry.checks.services import CheckRequest
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, World


def decision_at(session: Session, app: Flask, world: World, at):  # type: ignore[no-untyped-def]
    caller = Caller(world.org_ids["acme"], "acme", "Acme", "sender", None)
    sender = resolve_sender(session, caller, "acme-cards", "check", utcnow())
    # The calling window is not what these tests are about: open it all day.
    settings = replace(app.config["REGISTRY"], calling_hours=(time(0), time(23, 59)))
    return asof.decide_as_of(
        session, settings, CheckRequest(sender, "sms", "marketing", "finance", at), HOLDER
    ).reason


def test_revoked_consent_counted_before_revocation_not_after(app: Flask, acme: Api, session: Session, world: World,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )
    before = utcnow()
    consent = acme.post("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
                                      "evidence": {"method": "web_form", "captured_at": (before - timedelta(days=1)).isoformat()}}).get_json()  # fmt: skip
    given = utcnow()
    acme.post(f"/consents/{consent['id']}/revoke")
    after = utcnow()
    assert decision_at(session, app, world, before - timedelta(seconds=1)) == "no_consent"
    assert decision_at(session, app, world, given) == "consent"
    assert decision_at(session, app, world, after) == "no_consent"


def test_optout_and_preferences_as_of(
    app: Flask, acme: Api, session: Session, world: World
) -> None:
    t0 = utcnow()
    acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "全部退订"})
    t1 = utcnow()
    assert decision_at(session, app, world, t0) == "no_consent"
    assert decision_at(session, app, world, t1) == "opted_out"
