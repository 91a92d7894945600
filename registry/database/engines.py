"""Creating engines: SQLite's pragmas and writer lock, PostgreSQL's timeouts and deadlines.

``make_engine`` sets each backend up to be safe under load (on SQLite: WAL,
BEGIN IMMEDIATE, the writer lock of database/writerlock.py wired into commit
and rollback); ``make_pg_engine`` bounds a PostgreSQL engine's connections by
``Timeouts``, and a standby's statements by ``Deadlines``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.pool import PoolProxiedConnection

from registry.database.writerlock import _WRITERS, _lock_path, _WriterLock


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
