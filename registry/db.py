"""The database: one engine per app, one session per request, SQLite pragmas."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

    def rows(self, conn: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement on ``conn`` (a SQLAlchemy Connection); return processed rows."""
        entry = self._by_dialect.get(conn.dialect.name) or self._compile(conn.dialect)
        compiled, binds, fixed, results, names = entry
        values = dict(fixed)
        for name, proc in binds.items():
            value = params[name]  # a missing parameter is a KeyError, as SQLAlchemy would refuse
            values[name] = value if proc is None else proc(value)
        args = tuple(values[n] for n in names) if names is not None else values
        lock = _WRITERS.get(conn.engine) if self.writes else None
        if lock is not None and conn.get_execution_options().get("autocommit_reads"):
            lock.acquire()
            try:
                raw = conn.exec_driver_sql(compiled.string, args).fetchall()
            finally:
                lock.release()
        else:
            raw = conn.exec_driver_sql(compiled.string, args).fetchall()
        return [
            tuple(v if p is None else p(v) for v, p in zip(row, results, strict=True))
            for row in raw
        ]


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
    explicit BEGIN. Same connection, no second session: a check that counts
    pays three statements more, not a connection. On a connection already in
    a transaction (a batch, the tests' rolled-back one) the block simply runs
    in it, and the caller commits.
    """
    options = conn.get_execution_options()
    if options.get("autocommit_reads"):
        lock, begin = _WRITERS.get(conn.engine), "BEGIN IMMEDIATE"
    elif options.get("isolation_level") == "AUTOCOMMIT":
        lock, begin = None, "BEGIN"
    else:
        yield
        return
    if lock is not None:
        lock.acquire()
    try:
        conn.exec_driver_sql(begin)
        try:
            yield
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
    finally:
        if lock is not None:
            lock.release()


class Database:
    """The engine and session factory of each app, attached with ``init_app``.

    State lives in ``app.extensions``, not on this object, so that several apps
    (tests, a CLI inside a server) never share an engine by accident.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's engine from its settings and close sessions at teardown."""
        settings = app.config["REGISTRY"]
        engine = make_engine(settings.database_url)
        replicas = Replicas(
            [make_engine(url, pool_size=5, max_overflow=5) for url in settings.replica_urls],
            settings.replica_max_lag,
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

    A standby is used only while it streams from the primary and its replay
    lag is within ``max_lag`` seconds; the health answer is cached for
    ``HEALTH_TTL`` seconds per process, so the staleness a check can see is at
    most ``max_lag + HEALTH_TTL``. A standby that fails is skipped until it
    answers again; with none healthy, reads go to the primary.
    """

    HEALTH_TTL = 0.5
    _LAG = text(
        "SELECT pg_is_in_recovery(), "
        "(SELECT status FROM pg_stat_wal_receiver LIMIT 1), "
        "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
    )

    def __init__(self, engines: list[Engine], max_lag: float) -> None:
        self.engines = engines
        self.max_lag = max_lag
        self._health: dict[int, tuple[float, bool]] = {}
        self._factories = [sessionmaker(bind=e, expire_on_commit=False) for e in engines]

    def healthy(self, index: int) -> bool:
        """Tell whether standby ``index`` may serve reads now (cached briefly)."""
        now = time.monotonic()
        cached = self._health.get(index)
        if cached is not None and now - cached[0] < self.HEALTH_TTL:
            return cached[1]
        try:
            with self.engines[index].connect() as conn:
                # A text query: its three columns are untyped.
                row: Row[Any, Any, Any] = conn.execute(self._LAG).one()
                in_recovery, receiver, lag = row
            ok = (
                bool(in_recovery)
                and receiver == "streaming"
                and lag is not None
                and float(lag) <= self.max_lag
            )
        except Exception:  # a dead standby is simply not used; the primary answers
            ok = False
        self._health[index] = (now, ok)
        return ok

    def session(self) -> Session | None:
        """Return a session on the first healthy standby, or None."""
        for index, factory in enumerate(self._factories):
            if self.healthy(index):
                return factory()
        return None


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


def get_read_session() -> tuple[Session, str]:
    """Return a session for lag-tolerant reads and where it reads: "replica" or "primary"."""
    state = _state()
    if state.replicas.engines:
        if "db_read_session" not in g:
            g.db_read_session = state.replicas.session()
        if g.db_read_session is not None:
            return g.db_read_session, "replica"
    return get_reader(), "primary"


@dataclass(frozen=True, slots=True)
class CheckSessions:
    """The sessions a check request uses, chosen by database and standby health.

    ``write`` takes the log rows (the request commits it before answering);
    ``read`` the facts (a standby's when one is healthy: ``replica``);
    ``lookup`` reads keys and senders on the primary.
    """

    write: Session
    read: Session
    lookup: Session
    replica: bool


def get_check_sessions(single: bool) -> CheckSessions:
    """Return this request's sessions for a check of one number (``single``) or a batch.

    A single check's one write is its log row: it commits by itself (no
    BEGIN/COMMIT) on the connection that reads its facts (on SQLite under the
    writer lock, which the reads never take). A batch writes a batch row and
    its log rows in one transaction.
    """
    auto = get_autocommit()
    read, source = get_read_session()
    lookup = auto or get_reader()
    if single and auto is not None:
        return CheckSessions(auto, auto if source == "primary" else read, auto, source == "replica")
    if single and _state().reader is not None:
        # SQLite: the log row is one statement on the reader's connection, which
        # commits by itself under the writer lock (``Prepared``): one connection,
        # no BEGIN/COMMIT, the lock held for that statement only.
        return CheckSessions(lookup, read, lookup, False)
    return CheckSessions(get_session(), read, lookup, source == "replica")


def _close_session(_exc: BaseException | None) -> None:
    for name in ("db_session", "db_read_session", "db_reader", "db_autocommit"):
        session = g.pop(name, None)
        if session is not None:
            session.close()
