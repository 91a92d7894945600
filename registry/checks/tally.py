"""The frequency cap's counter: exact under parallel checks, paid only by holders with a cap.

A holder may cap the marketing contacts of all senders at N a local day and
M a local week, per channel (SPEC §3 step 9, issue 19). Every marketing
``allow`` answered for such a holder is a contact: senders ask right before
contacting, so the allow is the honest proxy for the contact itself.

``decide`` (registry/decision.py) states the rule; this module is its
authority. One row per (holder, channel, local week) holds the week's total
and each day's count (``ContactTally``), and one statement both checks the
limits and counts::

    INSERT INTO contact_tally (phone, channel, week, total, dayN) VALUES (..., 1, 1)
    ON CONFLICT (phone, channel, week) DO UPDATE
       SET total = total + 1, dayN = dayN + 1
     WHERE dayN < :per_day AND total < :per_week

It writes a row (its row count is 1) only when the slot was free and is now
taken; no RETURNING, so no result for the driver and SQLAlchemy to build. Two workers
that race for the last slot cannot both win: on PostgreSQL the upsert locks
the row, and the second re-evaluates the WHERE on the first's committed row
(READ COMMITTED's rule for ON CONFLICT DO UPDATE); on SQLite every write
transaction holds the database's write lock from BEGIN IMMEDIATE on
(registry/database/engines.py). The count and the check's log row are
written in the same transaction (``one_transaction`` of
database/writerlock.py on the check's own connection, or the batch's
transaction), so a counted contact is always a logged allow, and a
failed request counts nothing.

A check that loses the race is answered ``frequency_capped``: the counts are
read back and ``decide`` runs again with them, which also names when a slot
frees. Holders without a cap never reach this module: their checks pay
nothing for it (docs/performance.md has the figures).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from registry.checks.models import ContactTally
from registry.database.statements import Prepared, table_of
from registry.decision import Facts, cap_window

tally = table_of(ContactTally)
# "No limit" on one of the two: a bound no count reaches.
UNLIMITED = 2**31 - 1


def _upsert(dialect: str, weekday: int) -> Any:
    """Return the counting statement for one day of the week on this database."""
    day = tally.c[f"day{weekday}"]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(tally)
        .values(
            phone=bindparam("phone", type_=tally.c.phone.type),
            channel=bindparam("channel", type_=tally.c.channel.type),
            week=bindparam("week", type_=tally.c.week.type),
            total=1,
            # Every day named: a precompiled statement applies no column defaults.
            **{f"day{n}": int(n == weekday) for n in range(7)},
        )
        .on_conflict_do_update(
            index_elements=[tally.c.phone, tally.c.channel, tally.c.week],
            set_={"total": tally.c.total + 1, day.name: day + 1},
            where=and_(
                day < bindparam("per_day", type_=Integer()),
                tally.c.total < bindparam("per_week", type_=Integer()),
            ),
        )
    )


# Compiled once (database.statements.Prepared): SQLAlchemy's per-execution cache lookup of an
# upsert cost more than the statement itself.
_UPSERTS = {
    (dialect, weekday): Prepared(_upsert(dialect, weekday))
    for dialect in ("sqlite", "postgresql")
    for weekday in range(7)
}


def used(conn: Connection, phone: str, channel: str, week: date, weekday: int) -> tuple[int, int]:
    """Return the contacts counted on the day and in the week of a check (0 for none)."""
    row = conn.execute(
        select(tally.c[f"day{weekday}"], tally.c.total).where(
            tally.c.phone == phone, tally.c.channel == channel, tally.c.week == week
        )
    ).first()
    return (row[0], row[1]) if row is not None else (0, 0)


def count(
    conn: Connection,
    phone: str,
    channel: str,
    limits: tuple[int | None, int | None],
    facts: Facts,
    at: Any,
    zone: ZoneInfo,
) -> Facts | None:
    """Take a slot for an allow; return None when taken, else the facts with the counts that deny it.

    ``conn`` must be in the transaction that also writes the check's log row.
    """
    week, weekday = cap_window(at, zone)
    per_day, per_week = limits
    taken = _UPSERTS[conn.dialect.name, weekday].changed(
        conn,
        {
            "phone": phone,
            "channel": channel,
            "week": week,
            "per_day": UNLIMITED if per_day is None else per_day,
            "per_week": UNLIMITED if per_week is None else per_week,
        },
    )
    if taken:
        return None
    if facts.cap is None:  # counted_cap returned limits, so the holder has a cap
        raise RuntimeError("a capped check without a cap")
    return replace(facts, cap=replace(facts.cap, used=used(conn, phone, channel, week, weekday)))
