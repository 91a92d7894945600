"""fact_change: every change of a number's facts is recorded on PostgreSQL; old rows are pruned."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.checks.facts import prune_fact_changes
from registry.config import Settings
from registry.subscribers.services import set_preferences
from registry.sync.worker import fact_change_keep
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World


def _changed(session: Session) -> list[str]:
    rows = session.execute(text("SELECT DISTINCT phone FROM fact_change ORDER BY phone"))
    return [r[0] for r in rows]


def _clear(session: Session) -> None:
    session.execute(text("DELETE FROM fact_change"))


def test_every_writer_of_a_numbers_facts_records_the_change(
    session: Session, acme: Api, carrier: Api, world: World
) -> None:
    if session.connection().dialect.name != "postgresql":
        pytest.skip("PostgreSQL triggers (SQLite has no standbys)")
    _clear(session)
    optout = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    assert acme.post("/optouts", optout).status_code == 201
    assert _changed(session) == [HOLDER]
    _clear(session)
    set_preferences(session, HOLDER2, dnd_sms=True)
    session.flush()
    assert _changed(session) == [HOLDER2]
    _clear(session)
    set_preferences(session, HOLDER2, blocked_categories=["finance"])
    session.flush()
    assert _changed(session) == [HOLDER2]
    _clear(session)
    report = {"disconnections": [{"phone": HOLDER2, "disconnected_at": "2026-06-01T00:00:00Z"}]}
    assert carrier.post("/numbers/disconnections", report).status_code in (200, 201, 202)
    assert HOLDER2 in _changed(session)
    _clear(session)
    session.execute(text("UPDATE consent SET status = status"))  # any writer, raw SQL too
    session.execute(text("DELETE FROM opt_out WHERE phone = :p"), {"p": HOLDER})
    assert _changed(session) == [HOLDER]
    _clear(session)
    session.execute(
        text("UPDATE sender_address SET withdrawn_at = NULL WHERE address = '10690001'")
    )
    assert _changed(session) == ["10690001"]
    # Nothing else is recorded: a change of a sender's name is no fact of a number.
    _clear(session)
    session.execute(text("UPDATE sender SET name = name"))
    assert _changed(session) == []


def test_old_fact_changes_are_pruned(session: Session) -> None:
    now = utcnow()
    for phone, age in ((HOLDER, 7200), (HOLDER2, 10)):
        session.execute(
            text("INSERT INTO fact_change (phone, changed_at) VALUES (:p, :t)"),
            {"p": phone, "t": (now - timedelta(seconds=age)).replace(tzinfo=None)},
        )
    assert prune_fact_changes(session, now - timedelta(seconds=3600)) == 1
    assert _changed(session) == [HOLDER2]


def test_fact_changes_are_kept_longer_than_any_standby_window() -> None:
    base = Settings("sqlite://", "x" * 32, "memory://")
    assert fact_change_keep(base) == 3600
    assert (
        fact_change_keep(replace(base, replica_max_lag=1000.0, replica_commit_allowance=3000.0))
        == 8000
    )
