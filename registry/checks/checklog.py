"""Writing the check log: a check's row before its answer leaves, a batch's rows in bulk.

One check's row is one precompiled INSERT (``_LOG_ONE``); with facts read on a
standby, the same INSERT is conditional (``_LOG_GUARDED``: no change in
``fact_change`` since the standby may lag, the copies still hold) and writes
nothing when the primary cannot confirm the answer (``Unconfirmed``: the check
is asked again on the primary). ``_log_single`` writes one uncounted check's
row, through the local spool (checks/spool.py) when the primary cannot take it.
A batch's rows (``log_batch``: one ``check_batch`` row, a log row per number)
go through the driver's bulk path, binary COPY on PostgreSQL and one INSERT
from a JSON array on SQLite (``_log_many``). ``overlap``: on PostgreSQL the
rows go as INSERTs from arrays in pipeline mode, sent and not waited for, with
the transaction's COMMIT behind them: the caller renders its answer while the
server writes them, then ``settle`` waits for both (``_log_sent``).
"""

from __future__ import annotations

import json
import re
import select as _select
import struct
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, literal_column, select
from sqlalchemy.engine import Connection
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


_LOG_COLUMNS = (
    "phone", "sender_id", "organization_id", "agent_id", "channel", "purpose", "category",
    "decision", "reason", "consent_id", "at", "checked_at", "batch_id", "address", "carrier_id",
)  # fmt: skip


# PostgreSQL's binary COPY, the rows built here: the columns every row of a
# batch shares first, then the answer's (decision, reason, consent), the
# phone last; each with its PostgreSQL type, as COPY's binary format encodes it.
_PG_COPY_COLUMNS = (
    ("sender_id", "int4"), ("organization_id", "int4"), ("agent_id", "int4"),
    ("channel", "varchar"), ("purpose", "varchar"), ("category", "varchar"),
    ("at", "timestamp"), ("checked_at", "timestamp"), ("batch_id", "int8"),
    ("address", "varchar"), ("carrier_id", "int4"),
    ("decision", "varchar"), ("reason", "varchar"), ("consent_id", "int8"),
    ("phone", "varchar"),
)  # fmt: skip
_PG_COPY = (
    f"COPY check_log ({', '.join(name for name, _ in _PG_COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)
_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + bytes(8)  # no flags, no header extension
_PG_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1)  # naive UTC, as the column stores it
_MICROSECOND = timedelta(microseconds=1)


def _pg_field(value: Any, kind: str) -> bytes:
    """Return one field of a binary COPY row: its length, then its value as PostgreSQL sends it."""
    if value is None:
        return b"\xff\xff\xff\xff"  # length -1: NULL
    if kind == "int4":
        data = struct.pack(">i", value)
    elif kind == "int8":
        data = struct.pack(">q", value)
    elif kind == "timestamp":  # microseconds since 2000-01-01, of a naive UTC time
        data = struct.pack(">q", (value - _PG_EPOCH) // _MICROSECOND)
    else:
        data = str(value).encode()
    return struct.pack(">i", len(data)) + data


def _log_many(
    session: Session,
    req: CheckRequest,
    decisions: dict[str, Decision],
    now: datetime,
    batch_id: int,
    carrier_id: int | None = None,
    overlap: bool = False,
) -> None:
    """Write a batch's check-log rows with the driver's bulk path.

    Ten thousand rows through SQLAlchemy's per-row parameter processing cost
    more than deciding them; here every value a row shares with the others is
    encoded once (times as naive UTC, as UTCDateTime stores them).

    On PostgreSQL one binary COPY: the bytes of a row are the prefix its
    answer shares with the other numbers of the same Decision (the batch's
    columns, then decision, reason and consent, encoded once each), then its
    phone; psycopg's row-by-row encoding cost more than the rest of the log.
    On SQLite one INSERT ... SELECT per run of consecutive numbers with the
    same answer, the phones one JSON array read by ``json_each`` and every
    other column bound once (numbers nobody holds, most of a batch, are one
    run); a batch of many short runs (each number its own consent) is one
    INSERT reading phone, decision, reason and consent from a JSON array of
    rows. Either way the rows go in the decisions' order (a batch receipt
    lists them by id).
    """
    conn = session.connection()
    # The two times once, exactly as UTCDateTime stores them on this database
    # (on SQLite a fixed-width text; the driver's own adapter would drop zero
    # microseconds and cost a call per row).
    to_db = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    at, checked = (to_db(req.at), to_db(now)) if to_db else (req.at, now)
    sent = overlap and conn.dialect.name == "postgresql"
    if sent and _log_sent(conn, req, decisions, (at, checked), batch_id, carrier_id):
        return
    s = req.sender
    fixed = (s.id, s.organization_id, s.agent_id, req.channel, req.purpose, req.category)
    chain = (req.caller, carrier_id)
    if conn.dialect.name == "postgresql":
        shared = (*fixed, at, checked, batch_id, *chain)
        head = struct.pack(">h", len(_PG_COPY_COLUMNS)) + b"".join(
            _pg_field(v, kind) for v, (_, kind) in zip(shared, _PG_COPY_COLUMNS, strict=False)
        )
        answers = _PG_COPY_COLUMNS[len(shared) : -1]
        prefixes: dict[int, bytes] = {}
        parts = [_PG_SIGNATURE]
        add = parts.append
        for phone, d in decisions.items():
            prefix = prefixes.get(id(d))
            if prefix is None:
                values = (d.decision, d.reason, d.consent_id)
                prefix = prefixes[id(d)] = head + b"".join(
                    _pg_field(v, kind) for v, (_, kind) in zip(values, answers, strict=True)
                )
            data = phone.encode()
            add(prefix)
            add(_LENGTHS[len(data)] if len(data) < len(_LENGTHS) else struct.pack(">i", len(data)))
            add(data)
        add(_PG_TRAILER)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        dbapi = conn.dialect.loaded_dbapi
        try:
            with cursor.copy(_PG_COPY) as copy:
                copy.write(b"".join(parts))
        except dbapi.Error as exc:  # the driver's own: raised as SQLAlchemy's, a 503 as elsewhere
            raise DBAPIError.instance(
                _PG_COPY, None, exc, dbapi.Error, connection_invalidated=conn.invalidated
            ) from exc
        return
    runs: list[tuple[tuple[str, str, int | None], list[str]]] = []
    last: Decision | None = None
    for phone, d in decisions.items():
        if d is not last:  # numbers of one shape share their Decision object
            answer = (d.decision, d.reason, d.consent_id)
            if not runs or runs[-1][0] != answer:
                runs.append((answer, []))
            last = d
        runs[-1][1].append(phone)
    common = (at, checked, batch_id, *chain)
    if len(runs) * _RUN <= len(decisions):
        for answer, phones in runs:
            conn.exec_driver_sql(
                _LOG_RUN_SQLITE,
                (*fixed, *answer, *common, json.dumps(phones, separators=(",", ":"))),
            )
        return
    varying = json.dumps(
        [(phone, d.decision, d.reason, d.consent_id) for phone, d in decisions.items()],
        separators=(",", ":"),
    )
    conn.exec_driver_sql(_LOG_MANY_SQLITE, (*fixed, *common, varying))


# A phone's length as a binary COPY field's length (E.164: at most 16 characters).
_LENGTHS = [struct.pack(">i", n) for n in range(17)]


# Runs of at least this many numbers on average are one INSERT each (SQLite):
# below it the statements cost more than reading every row's answer from JSON.
_RUN = 32


# The columns of _LOG_COLUMNS: the phone from the JSON array, the others bound
# once. Fixed column names, no value in the text.
_LOG_RUN_SQLITE = (
    f"INSERT INTO check_log ({', '.join(_LOG_COLUMNS)}) "  # noqa: S608  # nosec B608
    "SELECT value, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM json_each(?)"
)


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
    overlap: bool = False,
) -> int:
    """Log a batch of answered checks (one ``check_batch`` row, a log row per number); return its id.

    ``counts`` is (size, allowed, denied, invalid) of the request; by default
    the decisions' own. What a holder sees under "who checked my number" is
    these rows, whichever endpoint answered (``/check/batch``, ``/sync/compare``).

    ``overlap``: on PostgreSQL the log rows and the COMMIT may be left in
    flight (``_log_sent``); the caller must then call ``settle(session)``
    before it answers (and ``abandon(session)`` if it fails before that).
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
        _log_many(session, req, decisions, now, batch_id, carrier_id, overlap)
    return batch_id


# PostgreSQL in pipeline mode (``_log_sent``): the batch's log rows as INSERTs
# from text arrays (the phones, and with many short runs the answers too), a
# statement per run of consecutive numbers with one answer as on SQLite.
# The arrays are built by joining the values: phones are E.164 and decisions,
# reasons and ids words and digits (``_ARRAY_SAFE``), so no element needs quoting.
_PG_SHARED = "%s::int4, %s::int4, %s::int4, %s::varchar, %s::varchar, %s::varchar"
_PG_COMMON = "%s::timestamp, %s::timestamp, %s::int8, %s::varchar, %s::int4"
_LOG_RUN_PG = (
    f"INSERT INTO check_log ({', '.join(_LOG_COLUMNS)}) "  # noqa: S608  # nosec B608
    f"SELECT phone, {_PG_SHARED}, %s::varchar, %s::varchar, %s::int8, {_PG_COMMON} "
    "FROM unnest(%s::text[]) AS phone"
)
_LOG_MANY_PG = (
    f"INSERT INTO check_log ({', '.join(_LOG_COLUMNS)}) "  # noqa: S608  # nosec B608
    f"SELECT phone, {_PG_SHARED}, decision, reason, consent_id, {_PG_COMMON} "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[]) "
    "AS r(phone, decision, reason, consent_id)"
)
_ARRAY_SAFE = re.compile(r"[+0-9A-Za-z_,]*")
_PENDING = "checklog.pending"  # Connection.info (the driver connection's): the pipeline in flight


def _array(values: list[str]) -> str | None:
    joined = ",".join(values)
    return "{" + joined + "}" if _ARRAY_SAFE.fullmatch(joined) else None


def _log_sent(
    conn: Connection,
    req: CheckRequest,
    decisions: dict[str, Decision],
    times: tuple[Any, Any],
    batch_id: int,
    carrier_id: int | None,
) -> bool:
    """Send a batch's log rows on PostgreSQL in pipeline mode without waiting; False: not sent.

    The rows' statements go out whole (flushed to the socket), then, when the
    session's transaction is the connection's own (not a savepoint inside
    another, as in the tests), its COMMIT: the server writes the rows and
    commits while the caller renders the answer. ``settle`` waits for both
    and raises their error; nothing is answered before. Same rows, same order
    (each statement reads its array in order) as the binary COPY.
    """
    if not _pipelines():
        return False  # a libpq without pipeline mode (before 14): the binary COPY
    runs: list[tuple[tuple[str, str, int | None], list[str]]] = []
    last: Decision | None = None
    for phone, d in decisions.items():
        if d is not last:
            answer = (d.decision, d.reason, d.consent_id)
            if not runs or runs[-1][0] != answer:
                runs.append((answer, []))
            last = d
        runs[-1][1].append(phone)
    s = req.sender
    fixed = (s.id, s.organization_id, s.agent_id, req.channel, req.purpose, req.category)
    common = (*times, batch_id, req.caller, carrier_id)  # at, checked_at: naive UTC
    statements: list[tuple[str, tuple[Any, ...]]] = []
    if len(runs) * _RUN <= len(decisions):
        for answer, phones in runs:
            array = _array(phones)
            if array is None:
                return False
            statements.append((_LOG_RUN_PG, (*fixed, *answer, *common, array)))
    else:
        ds = list(decisions.values())
        arrays = (
            _array(list(decisions)),
            _array([d.decision for d in ds]),
            _array([d.reason for d in ds]),
            _array(["NULL" if d.consent_id is None else str(d.consent_id) for d in ds]),
        )
        if any(a is None for a in arrays):
            return False
        statements.append((_LOG_MANY_PG, (*fixed, *common, *arrays)))
    dbapi: Any = conn.connection.dbapi_connection
    pipeline = dbapi.pipeline()
    pipeline.__enter__()
    try:
        cursor = dbapi.cursor()
        for sql, params in statements:
            cursor.execute(sql, params, prepare=False)
        if not conn.in_nested_transaction():
            cursor.execute("COMMIT")
        pgconn = dbapi.pgconn
        while pgconn.flush():  # 1: more to send; the server starts on what it has
            _select.select([], [pgconn.socket], [])
    except BaseException as exc:
        pipeline.__exit__(type(exc), exc, exc.__traceback__)
        _raise_wrapped(conn, exc)
        raise
    conn.info[_PENDING] = pipeline
    return True


def _pipelines() -> bool:
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _raise_wrapped(conn: Connection, exc: BaseException) -> None:
    """Raise a driver error as SQLAlchemy would have (OperationalError: 503), the connection dropped if broken."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return
    broken = bool(getattr(conn.connection.dbapi_connection, "broken", False))
    if broken:
        conn.invalidate(exc)
    raise DBAPIError.instance(
        None, None, exc, psycopg.Error, connection_invalidated=broken
    ) from exc


def settle(session: Session) -> None:
    """Wait for a batch's log rows (and COMMIT) left in flight by ``log_batch(overlap=True)``.

    Raises what the server answered, as SQLAlchemy's errors; nothing left in
    flight: nothing to do (SQLite, or the rows were written at once).
    """
    if not session.in_transaction():
        return
    conn = session.connection()
    pipeline = conn.info.pop(_PENDING, None)
    if pipeline is None:
        return
    try:
        pipeline.__exit__(None, None, None)
    except BaseException as exc:
        _raise_wrapped(conn, exc)
        raise


def abandon(session: Session, exc: BaseException) -> None:
    """Leave pipeline mode after a failure before ``settle``: the session's rollback follows.

    A COMMIT already sent may have committed the rows (as when a failure came
    after the commit before): the client is answered the error, never an
    answer whose rows are not durable.
    """
    if not session.in_transaction():
        return
    conn = session.connection()
    pipeline = conn.info.pop(_PENDING, None)
    if pipeline is not None:
        pipeline.__exit__(type(exc), exc, exc.__traceback__)
