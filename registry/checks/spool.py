"""A durable local spool of check-log rows, for checks answered while the primary is down.

When the primary cannot take a check's log row (connection refused, a
timeout, a read-only server mid-failover) and the check's facts came from a
standby fresh within the bound, the row is written here instead: a SQLite
file in the instance folder, committed with ``synchronous=FULL`` (fsynced)
before the answer leaves. ``replay`` moves the rows into ``check_log`` once
the primary takes writes again: from ``registry worker`` on every tick, and
from the app process that spooled, after its next write on the primary.

**Ids.** The receipt names its log row (``log_id``), so a spooled row needs
an id no other row can have. A spool takes a namespace while the primary is
up: one ``check_spool`` row (its id ``o``); its rows get ``-(o * 2**32 + n)``,
``n`` the spool file's own AUTOINCREMENT (never reused, even after a delete).
Negative ids are outside the primary's identity sequence, and namespaces
differ by server, so the id is unique; the replayed ``check_log`` row keeps
it, so a receipt answered during an outage is verified like any other. A
spool without a namespace (its server started during the outage) spools
nothing: the check fails as it would without a spool.

**Exactly once.** ``replay`` inserts each row with its id and
``ON CONFLICT DO NOTHING`` on the primary key, commits, then deletes the
rows from the file. A crash between the two leaves rows that the next replay
inserts again as nothing; two replayers at once (the worker and an app
process) insert the same ids, and one of them finds the other's.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from registry.checks.models import CheckLog, CheckSpool
from registry.config import Settings
from registry.database.statements import table_of

log = logging.getLogger(__name__)
SHIFT = 2**32  # rows per namespace
_LOG = table_of(CheckLog)
_SPOOLS: dict[str, Spool] = {}
_SPOOLS_LOCK = threading.Lock()


def of(settings: Settings) -> Spool | None:
    """Return this process's spool for the settings, or None when spooling is off."""
    if not settings.check_spool:
        return None
    found = _SPOOLS.get(settings.check_spool_path)
    if found is None:
        with _SPOOLS_LOCK:
            found = _SPOOLS.setdefault(
                settings.check_spool_path, Spool(Path(settings.check_spool_path))
            )
    return found


# SQLSTATEs of a primary that cannot take a write now: read-only (a demoted or
# recovering node), shutting down, starting up. Connection failures and
# timeouts are OperationalErrors without one (or class 08, 57014).
_UNAVAILABLE = {"25006", "57P01", "57P02", "57P03"}


def unavailable(exc: DBAPIError) -> bool:
    """Tell whether a failed write means the primary is unavailable (not a bad row)."""
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(exc, OperationalError) or state in _UNAVAILABLE or exc.connection_invalidated


def _encode(value: Any) -> Any:
    return {"t": value.astimezone(UTC).isoformat()} if isinstance(value, datetime) else value


def _decode(value: Any) -> Any:
    return datetime.fromisoformat(value["t"]) if isinstance(value, dict) else value


class Spool:
    """One app server's spool file (shared by its processes; SQLite locks it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._origin: int | None = None
        self._replaying = threading.Lock()
        self.dirty = False  # this process spooled rows not replayed yet
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._open() as db:
            db.execute("CREATE TABLE IF NOT EXISTS origin (id INTEGER NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS row (n INTEGER PRIMARY KEY AUTOINCREMENT, "
                "log_id INTEGER NOT NULL UNIQUE, body TEXT NOT NULL)"
            )
            found = db.execute("SELECT id FROM origin").fetchone()
            self._origin = int(found[0]) if found else None
            self.dirty = db.execute("SELECT 1 FROM row LIMIT 1").fetchone() is not None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # each commit fsynced: on disk before the answer
        return db

    @property
    def origin(self) -> int | None:
        """Return this spool's namespace (a ``check_spool`` id), or None before it has one."""
        return self._origin

    def claim(self, conn: Connection) -> int:
        """Take a namespace on the primary (``conn``, committed here) unless the file has one."""
        if self._origin is not None:
            return self._origin
        with self._open() as db:
            db.execute("BEGIN IMMEDIATE")  # one claim per file, whichever process is first
            found = db.execute("SELECT id FROM origin").fetchone()
            if found is None:
                table = table_of(CheckSpool)
                origin: int = conn.execute(
                    insert(table).values(host=socket.gethostname()[:255]).returning(table.c.id)
                ).scalar_one()
                conn.commit()
                db.execute("INSERT INTO origin (id) VALUES (?)", (origin,))
                found = (origin,)
            db.execute("COMMIT")
        self._origin = int(found[0])
        return self._origin

    def put(self, row: dict[str, Any]) -> int | None:
        """Write one log row durably; return its id, or None without a namespace."""
        if self._origin is None:
            return None
        body = json.dumps({k: _encode(v) for k, v in row.items() if k in _LOG.c})
        with self._open() as db:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute("INSERT INTO row (log_id, body) VALUES (0, ?)", (body,))
            n = int(cur.lastrowid or 0)
            log_id = -(self._origin * SHIFT + n)
            db.execute("UPDATE row SET log_id = ? WHERE n = ?", (log_id, n))
            db.execute("COMMIT")
        self.dirty = True
        return log_id

    def pending(self, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """Return up to ``limit`` spooled rows, oldest first: (log id, columns)."""
        with self._open() as db:
            rows = db.execute("SELECT log_id, body FROM row ORDER BY n LIMIT ?", (limit,))
            return [(int(i), {k: _decode(v) for k, v in json.loads(b).items()}) for i, b in rows]

    def remove(self, log_ids: list[int]) -> None:
        """Forget rows already in ``check_log``."""
        with self._open() as db:
            db.executemany("DELETE FROM row WHERE log_id = ?", [(i,) for i in log_ids])

    def insert(self, conn: Connection, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """Insert spooled rows into ``check_log`` on ``conn``, each once (caller commits)."""
        if not rows:
            return
        values = [{**body, "id": log_id} for log_id, body in rows]
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(_LOG).on_conflict_do_nothing(), values)

    def replay(self, engine: Engine, limit: int = 1000) -> int:
        """Move every spooled row into ``check_log`` on ``engine``; return how many were moved."""
        moved = 0
        with self._replaying:
            while rows := self.pending(limit):
                with engine.begin() as conn:
                    self.insert(conn, rows)
                self.remove([i for i, _ in rows])  # after the commit: a crash leaves them
                moved += len(rows)
            self.dirty = False
        return moved

    def after_write(self, engine: Engine) -> None:
        """Run after a log row reached the primary: take a namespace, replay in the background."""
        if self._origin is None:
            try:
                with engine.connect() as conn:
                    self.claim(conn)
            except Exception:  # the check is answered and logged; the worker claims it later
                log.warning("check spool: no namespace taken", exc_info=True)
        if self.dirty and not self._replaying.locked():
            threading.Thread(target=self._replay_quietly, args=(engine,), daemon=True).start()

    def _replay_quietly(self, engine: Engine) -> None:
        try:
            self.replay(engine)
        except Exception:  # the primary went away again: the next write or the worker retries
            log.warning("check spool replay failed", exc_info=True)
