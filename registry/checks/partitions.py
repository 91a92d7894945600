"""The check log's monthly partitions on PostgreSQL: made ahead, expired whole.

Migration 0022 partitions ``check_log`` by range of ``checked_at``, one
partition per calendar month (``check_log_yYYYYmMM``) and a default one for
rows outside every month made so far. ``maintain`` (run by ``registry
worker`` daily, or ``registry checklog maintain``) makes the coming months'
partitions (moving any rows the default holds for them first, so attaching
never fails) and, with a retention of N months, drops every partition that
ended more than N months ago: a whole month leaves with one catalog change
and no WAL per row, where a DELETE would write every row's death and leave
the space to vacuum. On SQLite (a plain table) retention deletes rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

# A partition of the check log (migrations/env.py leaves them out of the drift check).
PARTITION = re.compile(r"^check_log_(default|y\d{4}m\d{2})$")
AHEAD = 2  # months of partitions made ahead of the current one


def month_start(day: date, ahead: int = 0) -> date:
    """Return the first day of ``day``'s month, moved ``ahead`` months."""
    months = day.year * 12 + day.month - 1 + ahead
    return date(months // 12, months % 12 + 1, 1)


def name_of(month: date) -> str:
    """Return the partition name of the month starting ``month``."""
    return f"check_log_y{month.year:04d}m{month.month:02d}"


@dataclass
class Maintained:
    """What one ``maintain`` run changed."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0


def _existing(conn: Connection) -> set[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'check_log'::regclass"
        )
    )
    return {r[0] for r in rows}


def maintain(conn: Connection, now: datetime, retention_months: int = 0) -> Maintained:
    """Make the coming months' partitions; drop (or delete) what retention lets go.

    ``retention_months`` 0 keeps everything. Runs in the caller's transaction.
    """
    done = Maintained()
    today = now.date()
    if conn.dialect.name != "postgresql":
        if retention_months:
            cutoff = month_start(today, -retention_months)
            result = conn.execute(
                text("DELETE FROM check_log WHERE checked_at < :cutoff"),
                {"cutoff": cutoff.isoformat()},
            )
            done.deleted_rows = result.rowcount
        return done
    existing = _existing(conn)
    for ahead in range(AHEAD + 1):
        month, following = month_start(today, ahead), month_start(today, ahead + 1)
        name = name_of(month)
        if name in existing:
            continue
        bounds = {"lo": month, "hi": following}
        # Rows the default partition caught for this month move into the new one first.
        conn.execute(text(f"CREATE TABLE {name} (LIKE check_log INCLUDING DEFAULTS)"))
        conn.execute(
            text(
                f"WITH moved AS (DELETE FROM check_log_default WHERE checked_at >= :lo "  # noqa: S608  # nosec B608
                f"AND checked_at < :hi RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            ),
            bounds,
        )
        conn.execute(
            text(
                f"ALTER TABLE check_log ATTACH PARTITION {name} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
            )
        )
        done.created.append(name)
    if retention_months:
        oldest_kept = name_of(month_start(today, -retention_months))
        for name in sorted(existing):
            if name != "check_log_default" and name < oldest_kept:
                conn.execute(text(f"DROP TABLE {name}"))
                done.dropped.append(name)
    return done
