"""The check log's partitions: months made ahead, rows of the default moved, old months dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.checks import partitions


def _log(session: Session, checked_at: str) -> None:
    session.execute(
        text(
            "INSERT INTO check_log (phone, sender_id, organization_id, channel, purpose, "
            "category, decision, reason, at, checked_at) VALUES ('+8613100001111', 1, 1, 'sms', "
            "'marketing', 'general', 'deny', 'no_consent', :t, :t)"
        ),
        {"t": checked_at},
    )


def _where(session: Session) -> list[str]:
    rows = session.execute(text("SELECT tableoid::regclass::text FROM check_log ORDER BY id"))
    return [r[0] for r in rows]


def test_months_are_made_ahead_and_old_months_dropped(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        _log(session, "2031-01-15 10:00:00.000000")
        _log(session, "2031-08-15 10:00:00.000000")
        done = partitions.maintain(conn, datetime(2031, 8, 1, tzinfo=UTC), retention_months=3)
        assert done.deleted_rows == 1  # SQLite: a plain table, retention deletes rows
        assert session.execute(text("SELECT count(*) FROM check_log")).scalar() == 1
        return
    # A row far ahead of every partition lands in the default one...
    _log(session, "2031-08-15 10:00:00")
    assert _where(session) == ["check_log_default"]
    done = partitions.maintain(conn, datetime(2031, 6, 3, tzinfo=UTC))
    assert done.created == ["check_log_y2031m06", "check_log_y2031m07", "check_log_y2031m08"]
    # ...and moves into its month when that month is made.
    assert _where(session) == ["check_log_y2031m08"]
    assert partitions.maintain(conn, datetime(2031, 6, 20, tzinfo=UTC)).created == []
    # One month kept before the current one: July and August stay, June and older go.
    done = partitions.maintain(conn, datetime(2031, 8, 1, tzinfo=UTC), retention_months=1)
    assert "check_log_y2031m06" in done.dropped
    assert "check_log_y2031m07" not in done.dropped
    assert "check_log_default" not in done.dropped
    assert _where(session) == ["check_log_y2031m08"]
