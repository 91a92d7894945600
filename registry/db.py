"""The database: one engine per app, one session per request, SQLite pragmas."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from flask import Flask, current_app, g
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    event,
    func,
    literal_column,
    text,
)
from sqlalchemy.engine import Engine, Row, create_engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import SQLModel

# One naming convention so that Alembic's autogenerate and batch mode on
# SQLite produce stable constraint names on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata
# Ids of tables that grow with the population (consents, opt-outs, events,
# checks...) are BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is
# the rowid alias, which is 64-bit anyway.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# A name the Database class can use in annotations: its ``sessionmaker``
# property shadows the class inside the class body.
SessionFactory: TypeAlias = "sessionmaker[Session]"


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
        names = tuple(compiled.positiontup) if dialect.positional else None
        entry = self._by_dialect[dialect.name] = (compiled, binds, fixed, results, names)
        return entry

    def _args(self, dialect: Any, params: dict[str, Any]) -> tuple[Any, Any]:
        """Return the compiled entry for ``dialect`` and the driver's arguments for ``params``."""
        entry = self._by_dialect.get(dialect.name) or self._compile(dialect)
        _compiled, binds, fixed, _results, names = entry
        values = dict(fixed)
        for name, proc in binds.items():
            value = params[name]  # a missing parameter is a KeyError, as SQLAlchemy would refuse
            values[name] = value if proc is None else proc(value)
        return entry, (tuple(values[n] for n in names) if names is not None else values)

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


def _processed(raw: list[Any], results: list[Any]) -> list[tuple[Any, ...]]:
    return [
        tuple(v if p is None else p(v) for v, p in zip(row, results, strict=True)) for row in raw
    ]


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
        if held is not None and held[0] == (os.getpid(), self.generation):
            return held[1]
        self._drop()  # retired by dispose(): closed (or, after a fork, the parent's: left alone)
        pooled = self.engine.raw_connection()
        if self.dialect.name == "postgresql":
            pooled.driver_connection.autocommit = True  # type: ignore[union-attr]
        pooled.detach()  # its own from now on: never back in the pool, closed when retired
        conn = pooled.dbapi_connection
        self._local.held = ((os.getpid(), self.generation), conn)
        return conn

    def _drop(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held[0][0] == os.getpid():
            with contextlib.suppress(Exception):
                held[1].close()

    def run(self, prepared: Prepared, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run ``prepared`` with ``params`` on this thread's connection; return processed rows."""
        entry, args = prepared._args(self.dialect, params)
        sql, results = entry[0].string, entry[3]
        lock = _WRITERS.get(self.engine) if prepared.writes else None
        for attempt in (0, 1):
            conn = self._connection()
            cursor = None
            try:
                if lock is not None:
                    lock.acquire()
                try:
                    cursor = conn.cursor()
                    cursor.execute(sql, args)
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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs to be safe under load."""
    if url.startswith("sqlite"):
        # A request may hold two connections at once (the lock-free reader and the
        # writer's session). With a bounded pool, more concurrent requests than the
        # pool holds (a threaded server) could each hold a reader and wait for a
        # writer connection that none will return: a pool deadlock until the 30 s
        # timeout. SQLite connections are file handles, so the overflow is unbounded.
        kwargs.setdefault("max_overflow", -1)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so that
            # savepoints work and every write transaction takes the lock up front.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Reads of a large registry: pages through the OS cache by memory map
            # rather than a read() per page, and a larger private cache (it grows
            # only as used). Scrubbing 300,000 numbers against 3,000,000 rows:
            # 9.6 s before, 6.8 s after (benchmarks/run.py, shared 2-core machine).
            cur.execute("PRAGMA mmap_size=1073741824")
            cur.execute("PRAGMA cache_size=-16000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE: a deferred transaction that reads and then writes
            # fails with SQLITE_BUSY at once when another worker wrote in between;
            # taking the write lock first waits instead. Reads that need no
            # transaction (the reader, see get_reader) run without one, each
            # statement on its own WAL snapshot, so they never hold the lock.
            if not conn.get_execution_options().get("autocommit_reads"):
                writers.acquire()
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    writers.release()
                    raise

        # SQLite makes a writer that finds the lock taken sleep and poll (1, 2,
        # 5, 10, 25... ms), so under load most of a check's time was spent asleep
        # after the lock was already free. An OS file lock queues the writers of
        # every worker process instead and wakes the next one at once; it is
        # released right after COMMIT or ROLLBACK.
        writers = _WRITERS[engine] = _WriterLock(_lock_path(url))
        dialect = engine.dialect
        do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

        def _commit(dbapi_conn: PoolProxiedConnection) -> None:
            try:
                do_commit(dbapi_conn)
            finally:
                writers.release()

        def _rollback(dbapi_conn: PoolProxiedConnection) -> None:
            try:
                do_rollback(dbapi_conn)
            finally:
                writers.release()

        # Patching a method of the instance: mypy compares against the unbound signature.
        dialect.do_commit = _commit  # type: ignore[method-assign,assignment]
        dialect.do_rollback = _rollback  # type: ignore[method-assign,assignment]
        return engine
    options = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20, **kwargs}
    return create_engine(url, **options)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a PostgreSQL connection may take to open, to run a statement, to stay silent.

    ``connect`` bounds opening a connection (libpq counts whole seconds, at
    least 2); ``statement`` is the server's ``statement_timeout`` and
    ``idle_in_transaction_session_timeout`` (0: none); TCP keepalives and
    ``tcp_user_timeout`` drop a connection whose peer machine is gone. A
    server that is alive but does not answer (a frozen standby) ignores its
    own ``statement_timeout``: ``deadline`` (standbys only) is the client's
    bound on each statement, enforced by ``Deadlines``.
    """

    connect: float = 5.0
    statement: float = 60.0
    deadline: float | None = None

    def connect_args(self) -> dict[str, Any]:
        """Return the libpq connection parameters (psycopg passes them through)."""
        args: dict[str, Any] = {
            "connect_timeout": max(2, round(self.connect)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 3,
            "keepalives_count": 3,
            "tcp_user_timeout": max(1000, round(1000 * (self.deadline or self.connect))),
        }
        if self.statement:
            ms = round(1000 * self.statement)
            args["options"] = (
                f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
            )
        return args


def make_pg_engine(url: str, timeouts: Timeouts, **kwargs: Any) -> Engine:
    """Create a PostgreSQL engine whose connections are bounded by ``timeouts``.

    With a ``deadline`` (standbys), every statement and every ping runs under
    it and the engine runs in autocommit (reads only: no BEGIN or ROLLBACK that
    a frozen server could leave unanswered).
    """
    options: dict[str, Any] = {"connect_args": timeouts.connect_args(), **kwargs}
    if timeouts.deadline is not None:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = make_engine(url, **options)
    if timeouts.deadline is not None:
        DEADLINES.watch(engine, timeouts.deadline)
    return engine


class Deadlines:
    """Close the socket under a statement that outlives its deadline.

    A PostgreSQL server that is stopped (SIGSTOP, a hung machine whose kernel
    still acknowledges packets) never answers and never enforces its own
    ``statement_timeout``; psycopg waits without end. One thread per process
    watches the armed connections and shuts the socket of one past its
    deadline down, so the statement fails at once with a disconnection error
    (and SQLAlchemy drops the connection from its pool).
    """

    TICK = 0.05

    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._pid = 0

    def watch(self, engine: Engine, seconds: float) -> None:
        """Bound every statement and ping of ``engine``'s connections by ``seconds``."""

        @event.listens_for(engine, "before_cursor_execute")
        def _arm(conn: Any, *_args: Any) -> None:
            self.arm(conn.connection.dbapi_connection, seconds)

        @event.listens_for(engine, "after_cursor_execute")
        def _disarm(conn: Any, *_args: Any) -> None:
            self.disarm(conn.connection.dbapi_connection)

        @event.listens_for(engine, "handle_error")
        def _failed(ctx: Any) -> None:
            if ctx.connection is not None and not ctx.connection.closed:
                with contextlib.suppress(Exception):
                    self.disarm(ctx.connection.connection.dbapi_connection)

        dialect = engine.dialect
        do_ping = dialect.do_ping

        def _ping(dbapi_conn: Any) -> bool:
            self.arm(dbapi_conn, seconds)
            try:
                return do_ping(dbapi_conn)
            finally:
                self.disarm(dbapi_conn)

        dialect.do_ping = _ping  # type: ignore[method-assign,assignment]

    def arm(self, dbapi_conn: Any, seconds: float) -> None:
        """Start the clock on a psycopg connection about to wait for its server."""
        if self._pid != os.getpid():  # first use in this process (or after a fork)
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="db-deadlines", daemon=True).start()
        with self._lock:
            self._armed[id(dbapi_conn)] = (time.monotonic() + seconds, dbapi_conn.pgconn.socket)

    def disarm(self, dbapi_conn: Any) -> None:
        """Stop the clock: the server answered (or the statement failed)."""
        with self._lock:
            self._armed.pop(id(dbapi_conn), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                late = [k for k, (deadline, _fd) in self._armed.items() if deadline <= now]
                for k in late:
                    _deadline, fd = self._armed.pop(k)
                    # shutdown acts on the socket itself, shared by the duplicate.
                    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)


DEADLINES = Deadlines()


# Each SQLite engine's writer lock (make_engine), for writes outside a transaction (Prepared).
_WRITERS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()


def _lock_path(url: str) -> str | None:
    """Return the lock file beside a SQLite database file (None for in-memory databases)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database + ".writer-lock"


class _WriterLock:
    """One writer at a time across threads and processes, for one SQLite file.

    Reentrant per thread (a savepoint inside a transaction does not wait for
    itself); a release without a matching acquire is ignored, because
    SQLAlchemy may roll back a connection that never began a write.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.local = threading.local()
        self.thread_lock = threading.Lock()
        self.fd: int | None = None
        self.pid = os.getpid()

    def acquire(self) -> None:
        depth = getattr(self.local, "depth", 0)
        if depth == 0:
            self.thread_lock.acquire()
            try:
                if self.path is not None:
                    if self.fd is None or self.pid != os.getpid():
                        # A forked worker needs its own open file: flock locks belong
                        # to the open file, which a fork would share with the parent.
                        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                        self.pid = os.getpid()
                    fcntl.flock(self.fd, fcntl.LOCK_EX)
            except BaseException:
                # The lock file cannot be opened (a read-only folder): fail this
                # write, not every later one of the process on a lock never released.
                self.thread_lock.release()
                raise
        self.local.depth = depth + 1

    def release(self) -> None:
        depth = getattr(self.local, "depth", 0)
        if depth == 0:
            return
        self.local.depth = depth - 1
        if depth == 1:
            if self.fd is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.thread_lock.release()


@contextmanager
def one_transaction(conn: Any) -> Iterator[None]:
    """Run the statements of the block on ``conn`` as one transaction, committed at its end.

    For a check's connection that commits each statement by itself (the single
    check's: the SQLite reader, ``autocommit_reads``, or PostgreSQL's
    ``AUTOCOMMIT`` session; see ``get_check_sessions``), when one check must
    write two rows atomically: a counted allow and its log row
    (checks/tally.py). On SQLite the writer lock is taken first and BEGIN
    IMMEDIATE holds the database's write lock to the COMMIT; on PostgreSQL an
    explicit BEGIN. Same connection, no second session. BEGIN, COMMIT and
    ROLLBACK go to the driver's connection directly, as SQLAlchemy sends its
    own (``Connection.commit`` calls the driver's ``commit()``, not a
    statement): through ``exec_driver_sql`` each cost a whole execution
    context and result, a third of what counting added to a check
    (docs/performance.md, "Frequency cap"). A driver error is raised as
    SQLAlchemy's (``DBAPIError.instance``), so the API answers a database
    that went away as it answers any other statement's failure. On a
    connection already in a transaction (a batch, the tests' rolled-back
    one) the block simply runs in it, and the caller commits.
    """
    options = conn.get_execution_options()
    if options.get("autocommit_reads"):
        lock, begin = _WRITERS.get(conn.engine), "BEGIN IMMEDIATE"
    elif options.get("isolation_level") == "AUTOCOMMIT":
        lock, begin = None, "BEGIN"
    else:
        yield
        return
    driver = conn.connection.driver_connection
    if lock is not None:
        lock.acquire()
    try:
        _driver_statement(conn, driver, begin)
        try:
            yield
        except BaseException:
            # The block's own error is the one to raise, even on a connection gone.
            with contextlib.suppress(DBAPIError):
                _driver_statement(conn, driver, "ROLLBACK")
            raise
        _driver_statement(conn, driver, "COMMIT")
    finally:
        if lock is not None:
            lock.release()


def _driver_statement(conn: Any, driver: Any, statement: str) -> None:
    """Send a transaction statement on the driver's connection; raise its error as SQLAlchemy's."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        driver.execute(statement).close()
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


class Database:
    """The engine and session factory of each app, attached with ``init_app``.

    State lives in ``app.extensions``, not on this object, so that several apps
    (tests, a CLI inside a server) never share an engine by accident.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's engine from its settings and close sessions at teardown."""
        settings = app.config["REGISTRY"]
        if settings.database_url.startswith("postgresql"):
            engine = make_pg_engine(
                settings.database_url,
                Timeouts(settings.database_connect_timeout, settings.database_statement_timeout),
            )
        else:
            engine = make_engine(settings.database_url)
        standby = Timeouts(
            settings.replica_timeout, settings.replica_timeout, deadline=settings.replica_timeout
        )
        replicas = Replicas(
            engine,
            [
                make_pg_engine(url, standby, pool_size=5, max_overflow=5)
                for url in settings.replica_urls
            ],
            settings.replica_max_lag,
            quorum=settings.replica_sync_quorum,
        )
        reader = autocommit = None
        if engine.dialect.name == "sqlite":
            reader = sessionmaker(
                bind=engine.execution_options(autocommit_reads=True), expire_on_commit=False
            )
        else:
            autocommit = sessionmaker(
                bind=engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        app.extensions["registry.db"] = _State(
            engine, sessionmaker(bind=engine, expire_on_commit=False), replicas, reader, autocommit
        )
        # Close at the end of each request, and of each app context (CLI, jobs):
        # an app context may outlive several requests (tests push one).
        app.teardown_request(_close_session)
        app.teardown_appcontext(_close_session)

    def dispose(self) -> None:
        """Close every pooled connection of the current app (primary and standbys)."""
        state = _state()
        state.direct.retire()
        state.engine.dispose()
        for engine in state.replicas.engines:
            engine.dispose()

    @property
    def engine(self) -> Engine:
        """Return the current app's engine."""
        return _state().engine

    @property
    def sessionmaker(self) -> SessionFactory:
        """Return the current app's session factory."""
        return _state().sessionmaker

    @property
    def reader(self) -> SessionFactory | None:
        """Return the current app's factory for lock-free reads (SQLite), if any."""
        return _state().reader

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session outside a request (CLI, worker); commit is the caller's."""
        session = self.sessionmaker()
        try:
            yield session
        finally:
            session.close()


class Replicas:
    """PostgreSQL hot standbys for reads that tolerate a bounded lag (checks).

    **Freshness is measured against the primary.** Every ``probe_every``
    seconds a process reads the primary's WAL insert position (an LSN, with the
    time it read it) and each standby's replay position. A standby that has
    replayed up to a position the primary had at time *t* holds every commit
    acknowledged before *t*: it is *fresh as of t*. A standby is used only while
    ``now - fresh_as_of <= max_lag``. A paused replay, a stalled stream, a
    dead walsender or walreceiver all stop the replay position, so the
    standby falls out within ``max_lag`` whatever its receiver reports; an
    idle primary does not move, so an idle standby stays fresh, truly.

    A standby that fails a probe or a read (each bounded by ``Deadlines``) is
    skipped for ``retry`` seconds. Reads are spread in turn over the
    standbys usable now; with none, the primary answers.
    """

    _PRIMARY = text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
    _STANDBY = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
    _RECEIVED = text("SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() - '0/0'::pg_lsn")
    _WAITING = text(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'startup' "
        "AND wait_event IN ('RecoveryWalStream', 'RecoveryRetrieveRetryInterval'))"
    )

    def __init__(
        self,
        primary: Engine | None,
        engines: list[Engine],
        max_lag: float,
        retry: float = 5.0,
        quorum: int = 0,
    ) -> None:
        # Autocommit: a probe's ROLLBACK on a pooled connection would make psycopg
        # drop that connection's prepared statements (the checks' among them).
        self.primary = primary.execution_options(isolation_level="AUTOCOMMIT") if primary else None
        self.engines = engines
        self.max_lag = max_lag
        self.retry = retry
        self.probe_every = min(0.5, max_lag / 4)
        self.quorum = quorum
        self._factories = [sessionmaker(bind=e, expire_on_commit=False) for e in engines]
        # (monotonic time, primary insert LSN), oldest first, from the primary probes.
        self._positions: list[tuple[float, int]] = []
        self._fresh = [float("-inf")] * len(engines)
        self._probed = [float("-inf")] * len(engines)
        self._down_until = [float("-inf")] * len(engines)
        self._probing = [threading.Lock() for _ in engines]
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def _primary_position(self, now: float) -> None:
        """Note the primary's position now, at most once per ``probe_every``."""
        if self.primary is None:
            return
        with self._lock:
            if self._positions and now - self._positions[-1][0] < self.probe_every:
                return
        with self.primary.connect() as conn:
            lsn = int(conn.execute(self._PRIMARY).scalar_one())
        self._note(now, lsn)

    def _note(self, now: float, lsn: int) -> None:
        with self._lock:
            self._positions.append((now, lsn))
            # Positions older than the bound can no longer make a standby usable.
            horizon = now - self.max_lag - self.probe_every
            while len(self._positions) > 1 and self._positions[0][0] < horizon:
                self._positions.pop(0)

    def _standbys_position(self, now: float) -> None:
        """With the primary unreachable: note the highest WAL position a standby received.

        Under synchronous replication (``ANY k`` of n standbys) every
        acknowledged commit is flushed on k of them, so once ``quorum``
        (n - k + 1) standbys answer, the highest position they received holds
        every commit acknowledged before ``now``, whether the primary is dead
        or only cut off from this server. Not while any answering node is a
        primary (promoted: its writes are on no standby yet); off with quorum 0.
        """
        with self._lock:
            if not self.quorum or (
                self._positions and now - self._positions[-1][0] < self.probe_every
            ):
                return
        received: list[int] = []
        for engine in self.engines:
            try:
                with engine.connect() as conn:
                    row: Row[Any, Any] = conn.execute(self._RECEIVED).one()
                    in_recovery, lsn = row
            except Exception:  # noqa: S112  # nosec B112  # a dead standby simply does not count
                continue
            if not in_recovery:
                return
            if lsn is not None:
                received.append(int(lsn))
        if len(received) >= self.quorum:
            self._note(now, max(received))

    def _probe(self, index: int, now: float) -> None:
        # The primary first: the standby is then compared with a position the
        # primary had before the standby's was read.
        cut_off = False
        try:
            self._primary_position(now)
        except Exception:  # the primary is down or cut off: a failover may be under way
            self._standbys_position(now)
            cut_off = self.quorum > 0
        with self.engines[index].connect() as conn:
            received = conn.execute(self._RECEIVED).one()[1] if cut_off else None
            row: Row[Any, Any] = conn.execute(self._STANDBY).one()
            in_recovery, replayed = row
            if received is not None and conn.execute(self._WAITING).scalar():
                # Waiting for more WAL: every complete record it had received is
                # replayed (the received end may be a record cut in two, which
                # no acknowledged commit is, and replay never reaches).
                replayed = max(int(replayed or 0), int(received))
        if not in_recovery or replayed is None:  # promoted, or never replayed: not a standby
            self._fresh[index] = float("-inf")
            return
        with self._lock:
            caught_up = [t for t, lsn in self._positions if lsn <= int(replayed)]
        if caught_up:
            self._fresh[index] = max(self._fresh[index], max(caught_up))

    def staleness(self, index: int) -> float | None:
        """Return how far standby ``index`` may be behind the primary now, or None if unusable."""
        now = time.monotonic()
        if now < self._down_until[index]:
            return None
        if now - self._probed[index] >= self.probe_every and self._probing[index].acquire(False):
            try:
                self._probed[index] = now
                self._probe(index, now)
            except Exception:  # a dead or hung standby is skipped; the primary answers
                self.failed(index)
                return None
            finally:
                self._probing[index].release()
        behind = now - self._fresh[index]
        return behind if behind <= self.max_lag else None

    def failed(self, index: int) -> None:
        """Skip standby ``index`` for ``retry`` seconds (it failed a probe or a read)."""
        self._down_until[index] = time.monotonic() + self.retry
        self._fresh[index] = float("-inf")

    def choose(self) -> tuple[int, float] | None:
        """Return the next usable standby in turn and how far it may be behind, or None."""
        usable = [
            (i, lag) for i in range(len(self.engines)) if (lag := self.staleness(i)) is not None
        ]
        return usable[next(self._turn) % len(usable)] if usable else None

    def session(self, index: int) -> Session:
        """Return a new session on standby ``index``."""
        return self._factories[index]()


class _State:
    def __init__(
        self,
        engine: Engine,
        factory: sessionmaker[Session],
        replicas: Replicas,
        reader: sessionmaker[Session] | None,
        autocommit: sessionmaker[Session] | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = factory
        self.replicas = replicas
        self.reader = reader
        self.autocommit = autocommit
        self.direct = Direct(engine)


def _state() -> _State:
    state: _State = current_app.extensions["registry.db"]
    return state


def get_session() -> Session:
    """Return this request's session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = _state().sessionmaker()
    session: Session = g.db_session
    return session


def get_reader() -> Session:
    """Return a session for this request's reads of current data (keys, senders, facts).

    On SQLite it runs outside any transaction, so a request holds the write
    lock only for its writes; on PostgreSQL it is the request's own session.
    """
    state = _state()
    if state.reader is None:
        return get_session()
    if "db_reader" not in g:
        g.db_reader = state.reader()
    session: Session = g.db_reader
    return session


def get_autocommit() -> Session | None:
    """Return a session whose every statement commits by itself (PostgreSQL), else None.

    For the single check, whose only write is one log row: without BEGIN and
    COMMIT it is three round trips instead of five. Never for work that must be
    atomic across statements. None on SQLite (writes queue on the writer lock)
    and inside the tests' rolled-back transaction.
    """
    state = _state()
    if state.autocommit is None:
        return None
    if "db_autocommit" not in g:
        g.db_autocommit = state.autocommit()
    session: Session = g.db_autocommit
    return session


@dataclass(frozen=True, slots=True)
class Standby:
    """The standby a request reads from, and the oldest commit it may be missing."""

    index: int
    session: Session
    missing_since: datetime
    replicas: Replicas

    def failed(self) -> None:
        """Skip this standby for a while: a read on it failed or outlived its deadline."""
        self.replicas.failed(self.index)


def get_standby() -> Standby | None:
    """Return this request's standby for lag-tolerant reads (checks), or None: the primary.

    ``missing_since`` is the wall-clock time from which the standby may lack
    commits (its measured staleness) less ``REGISTRY_REPLICA_COMMIT_ALLOWANCE``,
    the longest a write may take between stamping its ``fact_change`` row and
    committing (and clock skew between the app servers and the primary).
    """
    state = _state()
    if not state.replicas.engines:
        return None
    if "db_standby" not in g:
        chosen = state.replicas.choose()
        g.db_standby = None
        if chosen is not None:
            index, behind = chosen
            allowance = current_app.config["REGISTRY"].replica_commit_allowance
            since = datetime.now(UTC) - timedelta(seconds=behind + allowance)
            g.db_standby = Standby(index, state.replicas.session(index), since, state.replicas)
    standby: Standby | None = g.db_standby
    return standby


@dataclass(frozen=True, slots=True)
class CheckSessions:
    """The sessions a check request uses, chosen by database and standby health.

    ``write`` takes the log rows (the request commits it before answering);
    ``read`` the facts (a standby's when one is usable: ``standby``);
    ``lookup`` reads keys and senders on the primary.
    """

    write: Session
    read: Session
    lookup: Session
    standby: Standby | None = None
    direct: Direct | None = None  # the single check's facts and log row, without the Session

    @property
    def replica(self) -> bool:
        """Tell whether the facts are read from a standby."""
        return self.standby is not None

    def without_standby(self) -> CheckSessions:
        """Return the same request's sessions with the facts read on the primary too."""
        return CheckSessions(self.write, self.write, self.lookup)


def get_check_sessions(single: bool, standby: bool = True) -> CheckSessions:
    """Return this request's sessions for a check of one number (``single``) or a batch.

    A single check's one write is its log row: it commits by itself (no
    BEGIN/COMMIT) on the connection that reads its facts (``direct``, kept by
    the thread, unless the facts come from a standby) (on SQLite under the
    writer lock, which the reads never take). A batch writes a batch row and
    its log rows in one transaction. ``standby=False``: everything on the
    primary (a check whose standby answer could not be confirmed).
    """
    auto = get_autocommit()
    chosen = get_standby() if standby else None
    lookup = auto or get_reader()
    if single and auto is not None:
        if chosen is not None:
            return CheckSessions(auto, chosen.session, auto, chosen)
        return CheckSessions(auto, auto, auto, direct=_state().direct)
    if single and _state().reader is not None:
        # SQLite: the log row is one statement on the reader's connection, which
        # commits by itself under the writer lock (``Prepared``): one connection,
        # no BEGIN/COMMIT, the lock held for that statement only.
        return CheckSessions(lookup, lookup, lookup, direct=_state().direct)
    return CheckSessions(get_session(), chosen.session if chosen else get_reader(), lookup, chosen)


def _close_session(_exc: BaseException | None) -> None:
    standby = g.pop("db_standby", None)
    if standby is not None:
        standby.session.close()
    for name in ("db_session", "db_reader", "db_autocommit"):
        session = g.pop(name, None)
        if session is not None:
            session.close()
