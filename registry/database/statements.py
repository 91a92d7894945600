"""Core statement helpers: a model's Table, statements compiled once (``Prepared``), fingerprints.

``Prepared`` writes outside a transaction on SQLite take the writer lock
(database/writerlock.py); ``Direct`` runs the single check's ``Prepared``
statements on one DBAPI connection per thread; ``fingerprint`` is what the
per-process copies are verified with (registry/copies.py).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, String, Table, cast, func, literal_column
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from registry.database.writerlock import _WRITERS


def table_of(model: Any) -> Table:
    """Return a SQLModel table model's Table (typed, for Core statements)."""
    table: Table = model.__table__
    return table


class Prepared:
    """A fixed Core statement, compiled once per dialect and sent as driver SQL.

    SQLAlchemy walks a statement's whole tree on every execution to find it in
    its compiled cache; for the preflight check's UNION of seven selects that
    walk cost more than the query (benchmarks in docs/performance.md). This
    compiles once and applies the same bind and result processors SQLAlchemy
    would, through ``exec_driver_sql`` (so events, errors and transactions are
    SQLAlchemy's as usual). For statements without expanding (``IN``) parameters.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.writes = bool(statement.is_dml)
        self._by_dialect: dict[str, Any] = {}

    def _compile(self, dialect: Any) -> Any:
        compiled = self.statement.compile(dialect=dialect)
        # Parameters the caller gives (with their processors), and the
        # statement's own literal values, processed once here.
        binds: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        for name, bp in compiled.binds.items():
            proc = bp.type.dialect_impl(dialect).bind_processor(dialect)
            if bp.required:
                binds[name] = proc
            else:
                fixed[name] = bp.effective_value if proc is None else proc(bp.effective_value)
        # A select's columns, or an INSERT ... RETURNING's.
        columns = getattr(self.statement, "selected_columns", None)
        results = [
            col.type.dialect_impl(dialect).result_processor(dialect, None)
            for col in (columns if columns is not None else self.statement.exported_columns)
        ]
        # Positional drivers (SQLite): each slot in order, the caller's (with its
        # processor) or the statement's own value.
        slots = (
            tuple((n, n in binds, binds.get(n), fixed.get(n)) for n in compiled.positiontup)
            if dialect.positional
            else None
        )
        # Only the columns that have a result processor are processed; NULL stays None.
        processed = tuple((i, p) for i, p in enumerate(results) if p is not None)
        entry = self._by_dialect[dialect.name] = (compiled, binds, fixed, processed, slots)
        return entry

    def _args(self, dialect: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        """Return the compiled entry for ``dialect`` and the driver's arguments for ``params``.

        A missing parameter is a KeyError, as SQLAlchemy would refuse it.
        """
        entry = self._by_dialect.get(dialect.name) or self._compile(dialect)
        _compiled, binds, fixed, _results, slots = entry
        if slots is not None:
            args = []
            for name, given, proc, value in slots:
                if given:
                    value = params[name] if proc is None else proc(params[name])
                args.append(value)
            return entry, tuple(args)
        values = dict(fixed)
        for name, proc in binds.items():
            value = params[name]
            values[name] = value if proc is None else proc(value)
        return entry, values

    def rows(self, conn: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement on ``conn`` (a Connection, or a ``Direct``); return processed rows."""
        if isinstance(conn, Direct):
            return conn.run(self, params)
        entry, args = self._args(conn.dialect, params)
        compiled, results = entry[0], entry[3]
        lock = _WRITERS.get(conn.engine) if self.writes else None
        if lock is not None and conn.get_execution_options().get("autocommit_reads"):
            lock.acquire()
            try:
                raw = conn.exec_driver_sql(compiled.string, args).fetchall()
            finally:
                lock.release()
        else:
            raw = conn.exec_driver_sql(compiled.string, args).fetchall()
        return _processed(raw, results)

    def raw(
        self, conn: Any, params: dict[str, Any]
    ) -> tuple[list[Any], Callable[[list[Any]], list[tuple[Any, ...]]]]:
        """Run a read on ``conn`` (a Connection); return its rows as the driver gave them, and
        the function that processes some of them as ``rows`` would.

        For a caller that processes only some rows (a scrub decodes one row set
        per distinct shape: registry/checks/facts.py ``load_shapes``).
        """
        entry, args = self._args(conn.dialect, params)
        processed = entry[3]
        raw = conn.exec_driver_sql(entry[0].string, args).fetchall()
        return raw, lambda rows: _processed(rows, processed)

    def changed(self, conn: Any, params: dict[str, Any]) -> int:
        """Run a write without RETURNING on ``conn`` (a Connection); return how many rows it wrote.

        No result rows means no result metadata for SQLAlchemy to build from the
        cursor's description: for a counted check's upsert, the row count is the answer.
        """
        entry, args = self._args(conn.dialect, params)
        lock = _WRITERS.get(conn.engine) if self.writes else None
        if lock is not None and conn.get_execution_options().get("autocommit_reads"):
            lock.acquire()
            try:
                return int(conn.exec_driver_sql(entry[0].string, args).rowcount)
            finally:
                lock.release()
        return int(conn.exec_driver_sql(entry[0].string, args).rowcount)


def _processed(raw: list[Any], processed: tuple[tuple[int, Any], ...]) -> list[tuple[Any, ...]]:
    """Return the driver's rows with each processed column's non-NULL values processed.

    A result processor maps NULL to None (SQLAlchemy's, and ``UTCDateTime``'s), so
    NULLs, and the columns without a processor, are passed as the driver gave them.
    """
    if not processed:
        return [tuple(row) for row in raw]
    rows = []
    for row in raw:
        values = list(row)
        for i, proc in processed:
            value = values[i]
            if value is not None:
                values[i] = proc(value)
        rows.append(tuple(values))
    return rows


class _Held:
    """A thread's own connection (``Direct``): closed when retired, or when its thread ends.

    A thread's locals are dropped when it ends; closing here then keeps a
    finished server thread from leaving its connection open (and psycopg from
    warning about it). After a fork the parent's connection is left alone.
    """

    __slots__ = ("conn", "key")

    def __init__(self, key: tuple[int, int], conn: Any) -> None:
        self.key, self.conn = key, conn

    def close(self) -> None:
        if self.key[0] == os.getpid():
            with contextlib.suppress(Exception):
                self.conn.close()

    def __del__(self) -> None:
        self.close()


class Direct:
    """The single check's statements on one DBAPI connection kept per thread, each committing itself.

    A warm check is two ``Prepared`` statements (its facts, its log row). Run
    through a Session they paid, per check, a pool checkout (with a ping
    round trip on PostgreSQL), SQLAlchemy's execution context and result
    objects, and the checkin's reset: more instructions than the statements.
    Here each thread of a process checks one connection out of the engine's
    pool once, detaches it (it never goes back to serve a transaction) and
    runs the statements on it in autocommit: on SQLite as the reader does
    (each statement its own WAL snapshot; the log row under the writer lock),
    on PostgreSQL as the ``AUTOCOMMIT`` session did. The pool's pre-ping is
    replaced by reconnect-on-error: a statement that finds the connection
    gone invalidates it; a read is retried once on a new connection, a write
    is not (it may have committed) and fails as a 503. Errors are SQLAlchemy's
    (``DBAPIError.instance``), so the error handlers answer as before.
    ``Database.dispose`` retires every thread's connection.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.generation = 0
        self._local = threading.local()

    def _connection(self) -> Any:
        held = getattr(self._local, "held", None)
        if held is not None and held.key == (os.getpid(), self.generation):
            return held.conn
        self._drop()  # retired by dispose(): closed (or, after a fork, the parent's: left alone)
        pooled = self.engine.raw_connection()
        if self.dialect.name == "postgresql":
            pooled.driver_connection.autocommit = True  # type: ignore[union-attr]
        pooled.detach()  # its own from now on: never back in the pool, closed when retired
        conn = pooled.dbapi_connection
        self._local.held = _Held((os.getpid(), self.generation), conn)
        return conn

    def _drop(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.close()

    def run(self, prepared: Prepared, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``prepared`` with ``params`` on this thread's connection; return processed rows."""
        entry, args = prepared._args(self.dialect, params)
        sql, results = entry[0].string, entry[3]
        lock = _WRITERS.get(self.engine) if prepared.writes else None
        # The engine's cursor events still see these statements (statement counts,
        # tracing), with no Connection to pass: listeners get None for it.
        events = self.engine.dispatch
        for attempt in (0, 1):
            conn = self._connection()
            cursor = None
            try:
                if lock is not None:
                    lock.acquire()
                try:
                    cursor = conn.cursor()
                    if events.before_cursor_execute:
                        events.before_cursor_execute(None, cursor, sql, args, None, False)
                    cursor.execute(sql, args)
                    if events.after_cursor_execute:
                        events.after_cursor_execute(None, cursor, sql, args, None, False)
                    raw = cursor.fetchall()
                finally:
                    if lock is not None:
                        lock.release()
                cursor.close()
                return _processed(raw, results)
            except self.dialect.loaded_dbapi.Error as exc:
                gone = self.dialect.is_disconnect(exc, conn, cursor)
                if gone:
                    self._drop()
                if not gone or prepared.writes or attempt:
                    raise DBAPIError.instance(
                        sql, args, exc, self.dialect.loaded_dbapi.Error,
                        connection_invalidated=gone, dialect=self.dialect,
                    ) from exc  # fmt: skip
        raise AssertionError("unreachable")

    def retire(self) -> None:
        """Make every thread open a new connection at its next statement (``dispose``)."""
        self.generation += 1
        self._drop()


def fingerprint(*columns: Any) -> ColumnElement[str]:
    """One text value, computed by the database, that changes whenever any of ``columns`` does.

    The per-process copies of keys, senders and delegations are verified with
    it (registry/copies.py explains the mechanism).
    """
    # The separators are inlined, not bound: fewer parameters on every check.
    none, bar = literal_column("'~'", String), literal_column("'|'", String)
    parts = [func.coalesce(cast(c, String), none) for c in columns]
    expr: ColumnElement[str] = parts[0]
    for part in parts[1:]:
        expr = expr.concat(bar).concat(part)
    return expr
