"""The as-of decision equals the live check: for generated histories, asked at each step.

``checks/asof.py`` rebuilds the facts from the event log; complaint verdicts
(which can suspend senders) rest on it. After every step of a generated history
the live ``POST /check`` is asked at that moment T; at the end the as-of decision
for each T must give the same answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from registry.checks import asof
from registry.checks.services import CheckRequest
from registry.consent import services as consent_services
from registry.consent.models import Consent
from registry.events.services import Actor
from registry.extensions import db
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.subscribers import services as subscribers
from registry.timeutil import utcnow
from tests import factories
from tests.conftest import Api, other_app

HOLDER_ACTOR = Actor("subscriber", "site")
CHANNELS = st.sampled_from([["sms"], ["voice"], ["sms", "voice"]])
STEP = st.one_of(
    st.tuples(st.just("consent"), CHANNELS, st.sampled_from([None, "finance", "retail"])),
    st.tuples(st.just("confirm")),
    st.tuples(st.just("revoke")),
    st.tuples(st.just("optout"), CHANNELS),
    st.tuples(
        st.just("prefs"),
        st.booleans(),
        st.booleans(),
        st.sampled_from([[], ["finance"], ["retail", "finance"]]),
        st.sampled_from([None, "00:00-00:01", "12:00-14:00"]),
    ),
    st.tuples(st.just("disconnect")),
)
_numbers = itertools.count(1)


@pytest.fixture
def open_all_day(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """An app whose calling window is the whole day: the property is about facts, not clocks."""
    with other_app(database_url, tmp_path, REGISTRY_CALLING_HOURS="00:00-23:59") as app:
        yield app


def _step(app: Flask, api: Api, carrier: Api, phone: str, step: tuple) -> None:  # type: ignore[type-arg]
    kind = step[0]
    if kind == "consent":
        evidence = {
            "method": "web_form",
            "captured_at": (utcnow() - timedelta(minutes=1)).isoformat(),
        }
        body = {"phone": phone, "sender": "acme-cards", "channels": step[1], "evidence": evidence}
        if step[2]:
            body["category"] = step[2]
        api.post("/consents", body)
        return
    with app.app_context(), db.session() as session:
        latest = session.scalars(
            select(Consent).where(Consent.phone == phone).order_by(Consent.id.desc())  # type: ignore[union-attr]
        ).first()
        if kind == "confirm" and latest is not None and latest.status == "pending":
            consent_services.confirm(session, latest, HOLDER_ACTOR)
        elif kind == "revoke" and latest is not None:
            api.post(f"/consents/{latest.id}/revoke")
        elif kind == "prefs":
            subscribers.set_preferences(
                session, phone, dnd_sms=step[1], dnd_voice=step[2],
                blocked_categories=step[3], quiet_hours=step[4],
            )  # fmt: skip
        session.commit()
    if kind == "optout":
        api.post(
            "/optouts",
            {"phone": phone, "sender": "acme-cards", "channels": step[1], "source": "call"},
        )
    elif kind == "disconnect":
        carrier.post("/numbers/disconnections", {"disconnections": [{"phone": phone, "disconnected_at": utcnow().isoformat()}]})  # fmt: skip


@pytest.mark.live
def test_asof_decision_equals_the_live_check(open_all_day: Flask) -> None:
    app = open_all_day
    with app.app_context(), db.session() as session:
        world = factories.world(session)
    client = app.test_client()
    api, carrier = Api(client, world.keys["acme"]), Api(client, world.keys["carrier"])

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(STEP, min_size=1, max_size=7))
    def history(steps: list[tuple]) -> None:  # type: ignore[type-arg]
        phone = f"+86139{next(_numbers):08d}"  # in the test carrier's range
        asked = []
        for step in steps:
            _step(app, api, carrier, phone, step)
            at = utcnow()
            for channel in ("sms", "voice"):
                live = api.check(phone, channel=channel, at=at.isoformat())
                asked.append((step, at, channel, live["reason"]))
        with app.app_context(), db.session() as session:
            caller = Caller(world.org_ids["acme"], "acme", "Acme", "sender", None)
            sender = resolve_sender(session, caller, "acme-cards", "check", utcnow())
            settings_ = app.config["REGISTRY"]
            for step, at, channel, reason in asked:
                req = CheckRequest(sender, channel, "marketing", "finance", at)
                then = asof.decide_as_of(session, settings_, req, phone).reason
                assert then == reason, (steps, step, channel)

    history()
