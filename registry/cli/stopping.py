"""Stopping a long-running command (a worker) cleanly: on SIGTERM or Ctrl-C, after the job in hand."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


def stop_on_signals() -> Callable[[], bool]:
    """Catch SIGTERM and SIGINT from now on; return a function telling whether one arrived."""
    stopping = False

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return lambda: stopping
