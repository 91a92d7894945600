"""PostgreSQL hot standbys: their lag measured against the primary, and the one a request reads.

``Replicas`` probes and chooses a standby; ``Standby`` is the one chosen for a
request (``registry.db.get_standby``) and the oldest commit it may be missing.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, Row
from sqlalchemy.orm import Session, sessionmaker


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
