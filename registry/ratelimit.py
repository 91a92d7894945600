"""The stores behind the rate limits: one for every process of a machine, one for a single process.

Flask-Limiter counts in a ``limits`` storage named by a URL
(``REGISTRY_RATELIMIT_STORAGE_URL``). ``registry serve`` runs several gunicorn
workers, and a limit counted in each worker's memory lets through as many
times its budget as there are workers (with 2 workers a "1,000,000 per day"
cold-check limit let 1,860,000 numbers through). So the default is
``sqlite:///<instance>/ratelimits.sqlite3``: ``SQLiteStorage`` below, one
small SQLite file that every process of the machine counts in. Redis
(``redis://``) shares the counts between machines; ``memory://`` is still
there for a single process (``InProcessStorage``).

Why SQLite, and how it stays cheap and exact:

- one counter is one row; a hit is ONE statement, an UPSERT with RETURNING
  (SQLite 3.35+), which SQLite runs under its database write lock, so
  increments from any number of processes and threads are never lost and
  each caller sees the count its own hit made;
- a window expires in the same statement: a row whose ``expires`` has passed
  starts again from the hit's own amount; rows nobody hits again are deleted
  by a sweep that each process runs at most once a minute;
- the file is in WAL mode with ``synchronous=NORMAL``: a commit appends to the
  log and does not wait for the disk (the counts need not survive a power
  cut, and WAL keeps the file consistent); readers never block the writer;
- writers queue on an OS file lock beside the file (``registry.db``'s writer
  lock, as the registry's own SQLite database does): SQLite alone makes a
  writer that finds the lock taken sleep and poll in steps of 1 to 100 ms,
  which measured as hits of up to 140 ms on a loaded machine; the file lock
  wakes the next writer as soon as the last one commits;
- each thread of each process has its own connection, opened on first use in
  that process: a connection opened before gunicorn forks is never used by
  the children;
- the file is its own, never the registry's database, so that counting a
  check never waits behind the registry's writes (nor they behind it).

The moving-window and sliding-window-counter strategies are supported too
(each in one ``BEGIN IMMEDIATE`` transaction), although the registry uses
Flask-Limiter's default, the fixed window. ``benchmarks/ratelimit.py``
measures the cost of a hit against ``memory://``.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.storage.base import TimestampedSlidingWindow
from limits.storage.memory import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from limits.util import WindowStats

from registry.database.writerlock import (
    _WriterLock as WriterLock,  # the one queue of SQLite writers
)

SWEEP_EVERY = 1.0  # seconds, for the in-process store
SQLITE_SWEEP_EVERY = 60.0  # seconds, per process, for the machine-wide file
BUSY_TIMEOUT_MS = 5000
SCHEME = "sqlite"
FILE_NAME = "ratelimits.sqlite3"


def hit_with_window(
    strategy: RateLimiter, item: RateLimitItem, *identifiers: str, cost: int = 1
) -> tuple[bool, WindowStats]:
    """Hit ``item`` for ``identifiers``; return whether it was allowed and the window after it.

    What ``strategy.hit`` then ``strategy.get_window_stats`` answer. A fixed
    window in ``SQLiteStorage`` (the default) answers both from its one UPSERT
    (``incr_window``), so a limited request costs one statement, not three;
    any other strategy or storage is asked as ``limits`` asks it.
    """
    storage = strategy.storage
    if isinstance(strategy, FixedWindowRateLimiter) and isinstance(storage, SQLiteStorage):
        count, ends = storage.incr_window(item.key_for(*identifiers), item.get_expiry(), cost)
        return count <= item.amount, WindowStats(ends, max(0, item.amount - count))
    allowed = strategy.hit(item, *identifiers, cost=cost)
    return allowed, strategy.get_window_stats(item, *identifiers)


def machine_url(instance_path: str | Path) -> str:
    """Return the default storage URL: the machine-wide counting file in the instance folder."""
    return f"{SCHEME}:///{Path(instance_path) / FILE_NAME}"


class InProcessStorage(MemoryStorage):
    """MemoryStorage whose expiry sweep runs inline, at most once per ``SWEEP_EVERY``.

    ``limits``' MemoryStorage counts correctly (each read drops its own key
    once expired) but schedules its sweep of other expired keys by starting a
    new ``threading.Timer`` whenever the previous one has finished: under
    load, a thread start on most requests, which measured as the largest
    single cost of a check (benchmarks/run.py). This subclass keeps every
    behaviour and sweeps inline instead. Declaring the ``memory`` scheme makes
    ``memory://`` use it.
    """

    STORAGE_SCHEME = ["memory"]

    _next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counter ("
    " key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS entry (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entry_key_at ON entry (key, at)",
)
# A hit: add to a live window, or start a new one. In an UPDATE every
# right-hand side reads the row as it was, so both CASEs test the old expiry.
_INCR = (
    "INSERT INTO counter (key, count, expires) VALUES (:key, :amount, :now + :expiry) "
    "ON CONFLICT (key) DO UPDATE SET "
    " count = CASE WHEN expires > :now THEN count + :amount ELSE :amount END,"
    " expires = CASE WHEN expires > :now THEN expires ELSE :now + :expiry END "
    "RETURNING count, expires"
)
_DECR = (
    "UPDATE counter SET count = max(count - :amount, 0) WHERE key = :key AND expires > :now "
    "RETURNING count"
)
_GET = "SELECT count, expires FROM counter WHERE key = ? AND expires > ?"
# Connections a forked child found open; kept referenced so they are never closed.
_INHERITED: list[sqlite3.Connection] = []


class SQLiteStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """Rate-limit counts in a SQLite file shared by every process of the machine.

    The URL names the file as SQLAlchemy does: ``sqlite:///relative/path`` or
    ``sqlite:////absolute/path``. See the module docstring for the design.
    """

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        """Remember the file (created with its tables on first use); open nothing yet."""
        prefix = f"{SCHEME}:///"
        if not uri or not uri.startswith(prefix) or uri == prefix:
            raise ValueError(f"expected {prefix}path/to/file, got {uri!r}")
        self.path = uri[len(prefix) :]
        self._local = threading.local()
        self._writers = WriterLock(self.path + ".writer-lock")
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Return what a failing storage raises (Flask-Limiter may swallow these)."""
        return (sqlite3.Error, OSError)

    # --- connections ------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """Return this thread's connection in this process, opening it on first use."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            if conn is not None:
                # Inherited through a fork: never used, and never closed either
                # (closing would let SQLite act on the parent's locks and WAL).
                _INHERITED.append(conn)
            conn = self._open()
            local.conn, local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit: each statement is its own transaction
            check_same_thread=True,
            cached_statements=32,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        # The first processes to open a new file race to set it up: one at a time.
        self._writers.acquire()
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")  # persistent, in the file
            for statement in _SCHEMA:
                conn.execute(statement)
        finally:
            self._writers.release()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Return this thread's connection, holding the writer lock of the file meanwhile."""
        conn = self._db()
        self._writers.acquire()
        try:
            yield conn
        finally:
            self._writers.release()

    def _sweep(self, now: float) -> None:
        """Delete expired rows nobody hits any more, at most once per ``SQLITE_SWEEP_EVERY``."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SQLITE_SWEEP_EVERY
        with self._write() as conn, _transaction(conn):
            conn.execute("DELETE FROM counter WHERE expires <= ?", (now,))
            conn.execute("DELETE FROM entry WHERE expires <= ?", (now,))

    # --- fixed window -------------------------------------------------------

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to the key's window (a new one if it expired); return the new count."""
        return self.incr_window(key, expiry, amount)[0]

    def incr_window(self, key: str, expiry: float, amount: int = 1) -> tuple[int, float]:
        """Add ``amount`` as ``incr`` does; return the new count and when its window ends.

        One statement for what ``hit`` and ``get_window_stats`` read in three
        (``hit_with_window``): the count and the end are the hit's own. A
        failing file raises ``StorageError`` when the limiter asked for wrapped
        errors, as ``limits`` wraps its own methods.
        """
        now = time.time()
        try:
            self._sweep(now)
            with self._write() as conn:
                row = conn.execute(
                    _INCR, {"key": key, "amount": amount, "now": now, "expiry": expiry}
                ).fetchone()
        except self.base_exceptions as exc:
            if self.wrap_exceptions:
                raise StorageError(exc) from exc
            raise
        return int(row[0]), float(row[1])

    def decr(self, key: str, amount: int = 1) -> int:
        """Take ``amount`` off the key's live window, not below zero; return the new count."""
        with self._write() as conn:
            found = conn.execute(
                _DECR, {"key": key, "amount": amount, "now": time.time()}
            ).fetchone()
        return int(found[0]) if found else 0

    def get(self, key: str) -> int:
        """Return the key's count in its live window (0 when there is none)."""
        row = self._db().execute(_GET, (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        """Return when the key's window ends (now when there is none), in epoch seconds."""
        now = time.time()
        row = self._db().execute(_GET, (key, now)).fetchone()
        return float(row[1]) if row else now

    def clear(self, key: str) -> None:
        """Forget the key's counts, in every strategy."""
        with self._write() as conn, _transaction(conn):
            conn.execute("DELETE FROM counter WHERE key = ?", (key,))
            conn.execute("DELETE FROM entry WHERE key = ?", (key,))

    def reset(self) -> int | None:
        """Forget every count; return how many keys there were."""
        with self._write() as conn, _transaction(conn):
            keys = conn.execute(
                "SELECT (SELECT count(*) FROM counter) + (SELECT count(DISTINCT key) FROM entry)"
            ).fetchone()[0]
            conn.execute("DELETE FROM counter")
            conn.execute("DELETE FROM entry")
        return int(keys)

    def check(self) -> bool:
        """Tell whether the file can be read."""
        try:
            self._db().execute("SELECT 1 FROM counter LIMIT 1").fetchall()
        except (sqlite3.Error, OSError):
            return False
        return True

    # --- moving window ------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` entries if the last ``expiry`` seconds leave room under ``limit``."""
        if amount > limit:
            return False
        with self._write() as conn, _transaction(conn):
            now = time.time()
            conn.execute("DELETE FROM entry WHERE key = ? AND at <= ?", (key, now - expiry))
            (count,) = conn.execute("SELECT count(*) FROM entry WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            conn.executemany(
                "INSERT INTO entry (key, at, expires) VALUES (?, ?, ?)",
                [(key, now, now + expiry)] * amount,
            )
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return (the oldest entry's time, the number of entries) of the last ``expiry`` seconds."""
        now = time.time()
        oldest, count = (
            self._db()
            .execute(
                "SELECT min(at), count(*) FROM entry WHERE key = ? AND at > ?", (key, now - expiry)
            )
            .fetchone()
        )
        return (float(oldest), int(count)) if count else (now, 0)

    # --- sliding window counter ---------------------------------------------

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Count ``amount`` in the current window if the weighted count leaves room under ``limit``."""
        if amount > limit:
            return False
        with self._write() as conn, _transaction(conn):
            now = time.time()
            previous_key, current_key = TimestampedSlidingWindow.sliding_window_keys(
                key, expiry, now
            )
            previous, previous_ttl, current, _ = self._sliding(
                previous_key, current_key, expiry, now
            )
            if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            # The current window's counter lives on through the next window, as the
            # previous one: twice the expiry (as limits' own storages keep it).
            conn.execute(
                _INCR, {"key": current_key, "amount": amount, "now": now, "expiry": 2 * expiry}
            ).fetchone()
        return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """Return (previous count, its weight in seconds, current count, current TTL)."""
        now = time.time()
        previous_key, current_key = TimestampedSlidingWindow.sliding_window_keys(key, expiry, now)
        return self._sliding(previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Forget the key's previous and current windows."""
        for each in TimestampedSlidingWindow.sliding_window_keys(key, expiry, time.time()):
            self.clear(each)

    def _sliding(
        self, previous_key: str, current_key: str, expiry: int, now: float
    ) -> tuple[int, float, int, float]:
        # The same arithmetic as limits' MemoryStorage._get_sliding_window_info.
        previous, current = self.get(previous_key), self.get(current_key)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction on an autocommit connection."""
    # IMMEDIATE takes the write lock before the first read, so that what the
    # block reads cannot change before it writes.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
