"""The check spool's replay: every spooled row lands in check_log exactly once.

Against the suite's database (SQLite, or PostgreSQL with
REGISTRY_TEST_DATABASE_URL): a crash between the insert and the delete, and
two replayers at once (two processes of one server sharing the file).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from registry.checks.spool import SHIFT, Spool
from registry.extensions import db
from registry.timeutil import utcnow

pytestmark = pytest.mark.live  # replays commit for real


def _row(i: int) -> dict[str, Any]:
    now = utcnow()
    return {
        "phone": f"+861310000{i:04d}",
        "sender_id": 1,
        "organization_id": 1,
        "agent_id": None,
        "channel": "sms",
        "purpose": "marketing",
        "category": "general",
        "decision": "deny" if i % 2 else "allow",
        "reason": "opted_out" if i % 2 else "allowed",
        "consent_id": None,
        "at": now + timedelta(hours=1),
        "checked_at": now,
        "address": None,
        "carrier_id": None,
        "asked_by_id": None,
        "since": now,  # what the guarded insert adds: not a column, not spooled
    }


def _counts(ids: list[int]) -> dict[int, int]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, count(*) FROM check_log WHERE id < 0 GROUP BY id")
        ).all()
    found = {int(i): int(n) for i, n in rows}
    return {i: found.get(i, 0) for i in ids}


def test_replay_moves_each_row_once_after_a_crash_and_under_two_replayers(
    app: Flask, tmp_path: Path
) -> None:
    with app.app_context():
        engine = db.engine
        first = Spool(tmp_path / "spool.sqlite3")
        assert first.put(_row(0)) is None  # no namespace yet: nothing spooled
        with engine.connect() as conn:
            origin = first.claim(conn)
        second = Spool(tmp_path / "spool.sqlite3")  # another process of the same server
        assert second.origin == origin
        with engine.connect() as conn:
            elsewhere = Spool(tmp_path / "other" / "spool.sqlite3").claim(conn)
        assert elsewhere != origin  # another server: another namespace

        ids = [first.put(_row(i)) for i in range(40)] + [second.put(_row(i)) for i in range(40, 60)]
        assert all(i is not None and -(origin + 1) * SHIFT < i < -origin * SHIFT for i in ids)
        spooled = [i for i in ids if i is not None]
        assert len(set(spooled)) == 60

        # A crash after the insert committed, before the rows left the file.
        with engine.begin() as conn:
            first.insert(conn, first.pending(25))
        assert sum(_counts(spooled).values()) == 25

        # Two replayers at once, on the same file.
        moved: list[int] = []
        threads = [threading.Thread(target=lambda s=s: moved.append(s.replay(engine, 7))) for s in (first, second)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _counts(spooled) == dict.fromkeys(spooled, 1)
        assert first.pending() == []
        assert first.replay(engine) == 0
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT phone, decision, reason FROM check_log WHERE id = :i"),
                {"i": spooled[3]},
            ).one()
        assert tuple(row) == ("+8613100000003", "deny", "opted_out")


def test_the_worker_replays_the_spool(app: Flask, database_url: str, tmp_path: Path) -> None:
    from registry.checks import spool
    from registry.sync import worker
    from registry.sync.webhooks import DeliveryPolicy
    from tests.conftest import other_app

    with other_app(database_url, tmp_path, REGISTRY_CHECK_SPOOL="on") as extra, extra.app_context():
        settings = extra.config["REGISTRY"]
        local = spool.of(settings)
        assert local is not None
        assert local.put(_row(1)) is None  # no namespace until the primary was reached
        policy = DeliveryPolicy(10, 1.0, 1.0, 1.0, timedelta(days=1))
        assert worker.tick(db.session, settings, policy).errors == []
        assert local.origin is not None  # the worker took one
        log_id = local.put(_row(1))
        assert log_id is not None
        done = worker.tick(db.session, settings, policy)
        assert (done.replayed, done.errors) == (1, [])
        assert _counts([log_id]) == {log_id: 1}
        assert worker.tick(db.session, settings, policy).replayed == 0
