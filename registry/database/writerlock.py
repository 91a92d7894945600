"""SQLite's writer lock: one writer at a time across threads and processes.

An OS file lock beside the database file queues the writers of every worker
(``_WriterLock``); ``make_engine`` (database/engines.py) takes it at BEGIN
IMMEDIATE and releases it after COMMIT or ROLLBACK; ``Prepared`` and ``Direct``
take it for a write outside a transaction, ``one_transaction`` for an atomic
block on a connection that otherwise commits each statement by itself (BEGIN,
COMMIT and ROLLBACK sent to the driver, ``_driver_statement``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

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
