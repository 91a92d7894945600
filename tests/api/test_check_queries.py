"""The hot path's statement count: a regression here is a slower registry for everyone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event

from registry import copies
from registry.events import sealing
from registry.extensions import db
from tests.conftest import Api
from tests.factories import HOLDER


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Collect the data statements (not BEGIN/SAVEPOINT bookkeeping) sent to the database."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture(autouse=True)
def _feed_position_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    # The receipt's feed position is read at most every KNOWN_TTL (50 ms) per
    # process; on a slow machine two checks may straddle a refresh. Pin it.
    monkeypatch.setattr(sealing, "KNOWN_TTL", 3600.0)


@pytest.fixture(autouse=True)
def _cold_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Start each test without per-process copies of keys and senders.
    monkeypatch.setattr(copies, "_CALLERS", {})
    monkeypatch.setattr(copies, "_SENDERS", {})


def test_single_check_is_four_statements_then_two(app: Flask, acme: Api, session) -> None:  # type: ignore[no-untyped-def]
    sealing.known_seq(session)  # the feed position is per process, not per request
    session.commit()  # and end the read (live, on SQLite, it would hold the write lock)
    with statements(app) as seen:
        acme.check(HOLDER)
    # key, sender, the facts (one UNION ALL), the log row; the receipt's feed
    # position comes from a per-process cache (registry/events/sealing.py)
    assert len(seen) == 4, "\n---\n".join(seen)
    assert sum("UNION ALL" in s for s in seen) == 1
    with statements(app) as seen:
        acme.check(HOLDER)
    # The key and sender now come from this process's copies, verified by the
    # facts query itself: the facts and the log row.
    assert len(seen) == 2, "\n---\n".join(seen)
    assert "api_key" in seen[0]
    assert "sender" in seen[0]


def test_from_adds_no_statement(app: Flask, acme: Api, carrier: Api, session) -> None:  # type: ignore[no-untyped-def]
    """Issue 15: the calling address is one more branch of the facts query, not a query."""
    carrier.post("/connections", {"organization": "acme", "kind": "sms_port",
                                  "addresses": ["10690001"]})  # fmt: skip
    sealing.known_seq(session)
    session.commit()
    acme.check(HOLDER)  # copies made
    with statements(app) as seen:
        assert acme.check(HOLDER, **{"from": "10690001"})["reason"] == "no_consent"
    assert len(seen) == 2, "\n---\n".join(seen)
    assert "sender_address" in seen[0]
    with statements(app) as seen:
        assert acme.check(HOLDER, **{"from": "10690002"})["reason"] == "unregistered_caller"
    assert len(seen) == 2, "\n---\n".join(seen)
    with statements(app) as seen:
        resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms",
                                          "phones": [HOLDER, "+8613900139000"],
                                          "from": "10690001"})  # fmt: skip
    assert resp.status_code == 200
    # the facts (with the address), the batch row, the log rows (COPY on PostgreSQL: not seen)
    assert len(seen) <= 3, "\n---\n".join(seen)
    assert "sender_address" in seen[0]


def test_delegated_check_costs_one_more_lookup(app: Flask, acme: Api, client, session) -> None:  # type: ignore[no-untyped-def]
    from registry.orgs import services as orgs

    org = orgs.create_org(session, "agent-cc", "Agent", "sender")
    _, key = orgs.create_key(session, org)
    session.commit()
    acme.post("/delegations", {"agent": "agent-cc", "senders": ["acme-cards"], "scopes": ["check"]})
    agent = Api(client, key)
    sealing.known_seq(session)
    session.commit()
    with statements(app) as seen:
        agent.check(HOLDER)
    assert len(seen) == 5, "\n---\n".join(seen)  # the owner's four and the delegation
    with statements(app) as seen:
        agent.check(HOLDER)
    assert len(seen) == 2, "\n---\n".join(seen)
    assert "delegation_sender" in seen[0]


def test_batch_of_thousands_is_a_handful_of_statements(app: Flask, acme: Api) -> None:
    phones = [f"+86138{i:08d}" for i in range(5_000)]
    with statements(app) as seen:
        resp = acme.post(
            "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": phones}
        )
    assert resp.status_code == 200
    # key, sender, facts in chunks of 2,000 (3), the batch row, the log rows (one executemany)
    assert len(seen) <= 8, "\n---\n".join(seen)


@pytest.mark.live
def test_single_check_on_postgresql_commits_its_log_row_by_itself(app: Flask) -> None:
    """On PostgreSQL the check's one write runs without BEGIN/COMMIT: visible at once elsewhere."""
    from sqlalchemy import text

    from registry.db import get_autocommit
    from tests import factories

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite queues writes on the writer lock instead")
        with db.session() as s:
            world = factories.world(s)
    api = Api(app.test_client(), world.keys["acme"])
    answer = api.check(HOLDER)
    with app.app_context(), db.engine.connect() as other:
        found = other.execute(
            text("SELECT decision FROM check_log WHERE phone = :p"), {"p": HOLDER}
        ).scalar_one()
    assert found == answer["decision"]
    with app.test_request_context():
        auto = get_autocommit()
        assert auto is not None
        assert auto.connection().connection.driver_connection.autocommit is True
