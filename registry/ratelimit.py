"""The in-process store behind ``memory://`` rate limits, without a thread per hit.

``limits``' MemoryStorage counts correctly (each read drops its own key once
expired) but schedules its sweep of other expired keys by starting a new
``threading.Timer`` whenever the previous one has finished — under load, a
thread start on most requests, which measured as the largest single cost of
a check (benchmarks/run.py). This subclass keeps every behaviour and sweeps
inline at most once a second instead. Declaring the ``memory`` scheme makes
``memory://`` (the SPEC's default) use it.
"""

from __future__ import annotations

import time

from limits.storage.memory import MemoryStorage

SWEEP_EVERY = 1.0  # seconds


class InProcessStorage(MemoryStorage):
    """MemoryStorage whose expiry sweep runs inline, at most once per ``SWEEP_EVERY``."""

    STORAGE_SCHEME = ["memory"]

    _next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
