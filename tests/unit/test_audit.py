"""The tamper-evident event log: sealed events chain per phone; an edit behind the app's back shows."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.events import audit, sealing
from registry.events.models import Event
from registry.subscribers import services as subscribers
from tests.factories import HOLDER, HOLDER2


def _events(session: Session) -> None:
    for phone in (HOLDER, HOLDER2):
        subscribers.set_preferences(session, phone, dnd_sms=True)
        subscribers.set_preferences(session, phone, dnd_voice=True)
        subscribers.set_preferences(session, phone, quiet_hours="22:00-08:00")
    session.commit()
    sealing.seal(session)
    session.commit()


def test_sealed_events_chain_per_phone(session: Session) -> None:
    _events(session)
    chain = session.execute(
        select(Event.seq, Event.prev_hash, Event.hash)
        .where(Event.phone == HOLDER)
        .order_by(Event.seq)  # type: ignore[arg-type]
    ).all()
    assert len(chain) == 3
    assert chain[0].prev_hash is None
    assert [c.prev_hash for c in chain[1:]] == [c.hash for c in chain[:-1]]
    report = audit.verify(session)
    assert report.broken is None
    assert report.events == 6
    assert report.phones == 2


def test_an_edit_behind_the_apps_back_names_the_first_broken_link(
    app: Flask, session: Session
) -> None:
    _events(session)
    target = session.execute(
        select(Event.id).where(Event.phone == HOLDER2).order_by(Event.seq).offset(1).limit(1)  # type: ignore[arg-type]
    ).scalar_one()
    session.execute(
        text("UPDATE event SET data = :d WHERE id = :id"), {"d": '{"dnd_sms": false}', "id": target}
    )
    session.commit()
    broken = audit.verify(session).broken
    assert broken is not None
    assert (broken.phone, broken.event_id) == (HOLDER2, target)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"phone {HOLDER2}, event {target}" in result.output


def test_a_deleted_event_breaks_the_chain_at_its_successor(app: Flask, session: Session) -> None:
    _events(session)
    first, second = session.execute(
        select(Event.id).where(Event.phone == HOLDER).order_by(Event.seq).limit(2)  # type: ignore[arg-type]
    ).scalars()
    session.execute(text("DELETE FROM event WHERE id = :id"), {"id": first})
    session.commit()
    broken = audit.verify(session).broken
    assert broken is not None
    assert (broken.phone, broken.event_id) == (HOLDER, second)
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 1


def test_verify_passes_on_an_intact_log(app: Flask, session: Session) -> None:
    _events(session)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok: 6 events on 2 numbers" in result.output
