"""What one ``POST /optouts`` writes: the opt-out row, its event, and nothing more.

``record_optout`` writes with Core inserts (issue 3, opt-out throughput); these
pin what it records so that the fast path keeps the content the ORM path had:
the row, an immutable ``optout.recorded`` event with the same fields, visible
in the change feed and in the holder's history.
"""

from __future__ import annotations

import json

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import copies
from registry.consent import holders
from registry.consent.models import OptOut
from registry.events import services as events
from registry.events.models import Event
from tests.api.test_changes import follow
from tests.api.test_check_queries import statements
from tests.conftest import Api
from tests.factories import HOLDER, World

BODY = {
    "phone": "138 0013 8000",
    "sender": "acme-cards",
    "channels": ["voice", "sms"],
    "source": "call",
    "received_at": "2025-06-15T09:30:00+08:00",
    "text": "不要再打了",
}


def test_answer_is_the_row_and_the_event_carries_the_same_content(
    acme: Api, session: Session, world: World
) -> None:
    resp = acme.post("/optouts", BODY)
    assert resp.status_code == 201
    answer = resp.get_json()
    assert answer == {
        "id": answer["id"],
        "phone": HOLDER,
        "sender": "acme-cards",
        "channels": ["sms", "voice"],  # sorted, as the tables keep them
        "source": "call",
        "received_at": "2025-06-15T01:30:00Z",  # the sender's local time, in UTC
        "created_at": answer["created_at"],
    }
    row = session.get(OptOut, answer["id"])
    assert row is not None
    assert (row.phone, row.sender_id, row.organization_id, row.agent_id) == (
        HOLDER,
        world.sender_ids["acme-cards"],
        world.org_ids["acme"],
        None,
    )
    assert (row.channels, row.source, row.text, row.withdrawn_at) == (
        "sms,voice",
        "call",
        "不要再打了",
        None,
    )
    assert row.received_at.isoformat() == "2025-06-15T01:30:00+00:00"
    assert row.created_at.isoformat().replace("+00:00", "Z") == answer["created_at"]

    (event,) = session.scalars(select(Event).where(Event.phone == HOLDER))  # type: ignore[arg-type]
    assert (event.type, event.sender_id, event.organization_id, event.agent_id) == (
        "optout.recorded",
        world.sender_ids["acme-cards"],
        world.org_ids["acme"],
        None,
    )
    assert (event.actor, event.via, event.channels, event.state, event.consent_id) == (
        "org:acme",
        "api",
        "sms,voice",
        "opted_out",
        None,
    )
    assert event.at == row.created_at
    assert json.loads(event.data or "") == {
        "source": "call",
        "received_at": "2025-06-15 01:30:00+00:00",
        "text": "不要再打了",
    }


def test_an_opt_out_reaches_the_feed_and_the_holders_history(acme: Api, session: Session) -> None:
    optout_id = acme.post("/optouts", BODY).get_json()["id"]
    (change,) = follow(acme)
    assert change == {
        "seq": change["seq"],
        "type": "optout.recorded",
        "phone": HOLDER,
        "sender": "acme-cards",
        "channels": ["sms", "voice"],
        "state": "opted_out",
        "at": change["at"],
        "organization": "acme",
    }
    assert [e.type for e in events.for_phone(session, HOLDER)] == ["optout.recorded"]
    (entry,) = holders.for_holder(session, HOLDER)
    assert [o.id for o in entry["optouts"]] == [optout_id]


def test_an_opt_out_is_two_inserts(app: Flask, acme: Api, world: World) -> None:
    # Copies an earlier test left under the same organization id (PostgreSQL
    # reuses ids after a live test's TRUNCATE ... RESTART IDENTITY) would be
    # found stale and dropped by the warm-up call instead of made by it.
    copies.forget(acme.key, world.org_ids["acme"], "acme-cards")
    acme.post("/optouts", BODY)  # the statements compile once, the copies are made
    with statements(app) as seen:
        assert acme.post("/optouts", BODY).status_code == 201
    # The key and sender come from per-process copies, checked inside the
    # opt-out's own insert (INSERT ... SELECT ... WHERE they still match); then
    # its event: no flush, no read back.
    verbs = [s.lstrip().split(None, 3)[:3] for s in seen]
    assert [v[0] for v in verbs] == ["INSERT", "INSERT"], seen
    assert [v[2] for v in verbs] == ["opt_out", "event"]
    assert "api_key" in seen[0]
    assert "sender" in seen[0]


def test_a_reply_opt_out_records_every_channel_with_the_text(acme: Api, session: Session) -> None:
    resp = acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "退订"})
    assert resp.get_json()["action"] == "opt_out"
    (row,) = session.scalars(select(OptOut).where(OptOut.phone == HOLDER))  # type: ignore[arg-type]
    assert (row.channels, row.source, row.text) == ("sms,voice", "sms_reply", "退订")
    (event,) = session.scalars(select(Event).where(Event.phone == HOLDER))  # type: ignore[arg-type]
    assert (event.type, event.via, event.channels) == ("optout.recorded", "sms", "sms,voice")
