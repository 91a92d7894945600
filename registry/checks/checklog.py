"""Writing the check log: a check's row before its answer leaves, a batch's rows in bulk.

One check's row is one precompiled INSERT (``_LOG_ONE``); with facts read on a
standby, the same INSERT is conditional (``_LOG_GUARDED``: no change in
``fact_change`` since the standby may lag, the copies still hold) and writes
nothing when the primary cannot confirm the answer (``Unconfirmed``: the check
is asked again on the primary). ``_log_single`` writes one uncounted check's
row, through the local spool (checks/spool.py) when the primary cannot take it.
A batch's rows (``log_batch``: one ``check_batch`` row, a log row per number)
go through the driver's bulk path, binary COPY on PostgreSQL and one INSERT
from a JSON array on SQLite (``_log_many``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry import copies
from registry.checks import spool
from registry.checks.facts import NO_RECENT_CHANGE, NO_RECENT_CHANGE_FROM, CallerAddress
from registry.checks.models import CheckBatch, CheckLog
from registry.config import Settings
from registry.database.standby import Standby
from registry.database.statements import Prepared, table_of
from registry.decision import Decision
from registry.timeutil import UTCDateTime

if TYPE_CHECKING:  # the service's request, for annotations only: the service imports this module
    from registry.checks.services import CheckRequest
    from registry.db import CheckSessions


class Unconfirmed(Exception):
    """The primary did not confirm an answer made from a standby: it is made again there.

    The check's log row is conditional (``_LOG_GUARDED``): written only while the
    copies it used are exact and the number has no change the standby may lack.
    """


_LOG_TABLE = table_of(CheckLog)


_LOG_ONE_COLUMNS = (
    "phone", "sender_id", "organization_id", "agent_id", "channel", "purpose", "category",
    "decision", "reason", "consent_id", "at", "checked_at", "address", "carrier_id", "asked_by_id",
)  # fmt: skip


# One check's log row (the columns of ``_log_row``), its id returned for the receipt.
_LOG_ONE = Prepared(
    insert(_LOG_TABLE)
    .values({name: bindparam(name, type_=_LOG_TABLE.c[name].type) for name in _LOG_ONE_COLUMNS})
    .returning(_LOG_TABLE.c.id)
)


# The same row from facts read on a standby: written only while the number (and
# the calling address, with ``from``) has no change the standby may lack
# (``:since`` on, facts.NO_RECENT_CHANGE: one probe of ``fact_change``) and,
# for copies of an owner's key and sender, while they hold (``copies.HOLD``).
# No row returned: ``Unconfirmed``. A condition in the statement the check runs
# anyway, so the primary runs one statement per check and no more.
_LOG_VALUES = select(*(bindparam(name, type_=_LOG_TABLE.c[name].type) for name in _LOG_ONE_COLUMNS))


_LOG_GUARDED = {
    (held, address): Prepared(
        insert(_LOG_TABLE)
        .from_select(
            list(_LOG_ONE_COLUMNS),
            _LOG_VALUES.where(
                and_(
                    *((copies.HOLD,) if held else ()),
                    NO_RECENT_CHANGE_FROM if address else NO_RECENT_CHANGE,
                )
            ),
        )
        .returning(_LOG_TABLE.c.id)
    )
    for held in (False, True)
    for address in (False, True)
}


def _write_log(conn: Any, req: CheckRequest, standby: Standby | None, row: dict[str, Any]) -> int:
    """Insert one check's log row; return its id.

    On facts read from a standby the insert is conditional (``_LOG_GUARDED``):
    no row written means the number's facts changed since the standby may lack
    commits, or a copy no longer holds: ``Unconfirmed``, and the check is asked
    again on the primary.
    """
    if standby is None:
        ((log_id,),) = _LOG_ONE.rows(conn, row)
        return int(log_id)
    row |= {"since": standby.missing_since, "from": req.caller, **(req.hold or {})}
    written = _LOG_GUARDED[req.hold is not None, req.caller is not None].rows(conn, row)
    if not written:
        raise Unconfirmed
    ((log_id,),) = written
    return int(log_id)


# The copies a standby-read check used still hold on that standby (``copies.HOLD``).
_HOLDS = Prepared(select(literal_column("1")).where(copies.HOLD))


def _log_single(
    dbs: CheckSessions, settings: Settings, req: CheckRequest, row: dict[str, Any]
) -> int:
    """Write one uncounted check's log row on the primary; return its id.

    ``dbs.direct``: on the thread's own connection (database.statements.Direct,
    only for facts read on the primary), else on ``dbs.write``'s.

    With facts from a standby and ``REGISTRY_CHECK_SPOOL`` on, a primary that
    cannot take the row (down, timing out, read-only in a failover) does not
    fail the check: the row goes to the local spool (checks/spool.py), once
    the copies are confirmed on the standby, and its id is the spool's.
    """
    local = spool.of(settings)
    standby, direct = dbs.standby, dbs.direct
    try:
        conn: Any = direct if direct is not None else dbs.write.connection()
        log_id = _write_log(conn, req, standby, row)
    except DBAPIError as exc:
        if local is None or standby is None or req.hold is None or not spool.unavailable(exc):
            raise
        dbs.write.rollback()
        try:
            held = _HOLDS.rows(standby.session.connection(), req.hold)
        except DBAPIError as failed:
            standby.failed()
            raise exc from failed
        if not held:
            raise Unconfirmed from exc
        spooled = local.put(row)
        if spooled is None:  # no namespace yet: as without a spool
            raise
        return spooled
    if local is not None:
        local.after_write(conn.engine)
    return log_id


def _log_row(
    req: CheckRequest, phone: str, dec: Decision, now: datetime, held: CallerAddress | None
) -> dict[str, Any]:
    return {
        "phone": phone,
        "sender_id": req.sender.id,
        "organization_id": req.sender.organization_id,
        "agent_id": req.sender.agent_id,
        "channel": req.channel,
        "purpose": req.purpose,
        "category": req.category,
        "decision": dec.decision,
        "reason": dec.reason,
        "consent_id": dec.consent_id,
        "at": req.at,
        "checked_at": now,
        "address": req.caller,
        "carrier_id": held.carrier_id if held is not None else None,
        "asked_by_id": req.asked_by,
    }


# The PostgreSQL types of _LOG_COLUMNS, as binary COPY needs them exactly.
_LOG_PG_TYPES = [
    "varchar", "int4", "int4", "int4", "varchar", "varchar", "varchar", "varchar", "varchar",
    "int8", "timestamp", "timestamp", "int8", "varchar", "int4",
]  # fmt: skip


_LOG_COLUMNS = (
    "phone", "sender_id", "organization_id", "agent_id", "channel", "purpose", "category",
    "decision", "reason", "consent_id", "at", "checked_at", "batch_id", "address", "carrier_id",
)  # fmt: skip


def _log_many(
    session: Session,
    req: CheckRequest,
    decisions: dict[str, Decision],
    now: datetime,
    batch_id: int,
    carrier_id: int | None = None,
) -> None:
    """Write a batch's check-log rows with the driver's bulk path.

    Ten thousand rows through SQLAlchemy's per-row parameter processing cost
    more than deciding them; here the rows are plain tuples (times as naive
    UTC, as UTCDateTime stores them), sent with binary COPY on PostgreSQL. On
    SQLite one INSERT ... SELECT reads the varying columns (phone, decision,
    reason, consent) from one JSON array with ``json_each`` and binds the
    columns every row shares once: binding 15 values per row through
    executemany cost more than SQLite's own JSON parsing.
    """
    conn = session.connection()
    # The two times once, exactly as UTCDateTime stores them on this database
    # (on SQLite a fixed-width text; the driver's own adapter would drop zero
    # microseconds and cost a call per row).
    to_db = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    at, checked = (to_db(req.at), to_db(now)) if to_db else (req.at, now)
    s = req.sender
    fixed = (s.id, s.organization_id, s.agent_id, req.channel, req.purpose, req.category)
    chain = (req.caller, carrier_id)
    columns = ", ".join(_LOG_COLUMNS)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # Binary COPY: no text to format here or to parse in the server.
        with cursor.copy(f"COPY check_log ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_LOG_PG_TYPES)
            write = copy.write_row
            for phone, d in decisions.items():
                write((phone, *fixed, d.decision, d.reason, d.consent_id, at, checked,
                       batch_id, *chain))  # fmt: skip
    else:
        varying = json.dumps(
            [(phone, d.decision, d.reason, d.consent_id) for phone, d in decisions.items()],
            separators=(",", ":"),
        )
        # Fixed column names and JSON paths; the values are bound.
        conn.exec_driver_sql(_LOG_MANY_SQLITE, (*fixed, at, checked, batch_id, *chain, varying))


# The columns of _LOG_COLUMNS: the varying ones from the JSON array's rows, the others
# bound once. Fixed column names and JSON paths, no value in the text.
_LOG_MANY_SQLITE = (
    f"INSERT INTO check_log ({', '.join(_LOG_COLUMNS)}) "  # noqa: S608  # nosec B608
    "SELECT json_extract(value, '$[0]'), ?, ?, ?, ?, ?, ?, json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?, ?, ?, ?, ? "
    "FROM json_each(?)"
)


def log_batch(
    session: Session,
    req: CheckRequest,
    decisions: dict[str, Decision],
    now: datetime,
    counts: tuple[int, int, int, int] | None = None,
    carrier_id: int | None = None,
) -> int:
    """Log a batch of answered checks (one ``check_batch`` row, a log row per number); return its id.

    ``counts`` is (size, allowed, denied, invalid) of the request; by default
    the decisions' own. What a holder sees under "who checked my number" is
    these rows, whichever endpoint answered (``/check/batch``, ``/sync/compare``).
    """
    if counts is None:
        allowed = sum(1 for d in decisions.values() if d.allowed)
        counts = (len(decisions), allowed, len(decisions) - allowed, 0)
    size, allowed, denied, invalid = counts
    batch_id: int = session.execute(
        insert(CheckBatch.__table__).returning(CheckBatch.__table__.c.id),  # type: ignore[attr-defined]
        {
            "organization_id": req.sender.organization_id,
            "agent_id": req.sender.agent_id,
            "sender_id": req.sender.id,
            "channel": req.channel,
            "purpose": req.purpose,
            "category": req.category,
            "size": size,
            "allowed": allowed,
            "denied": denied,
            "invalid": invalid,
            "checked_at": now,
        },
    ).scalar_one()
    if decisions:
        _log_many(session, req, decisions, now, batch_id, carrier_id)
    return batch_id
