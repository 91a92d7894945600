"""Wait for a condition instead of sleeping for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, done: Callable[[], T], timeout: float = 30, every: float = 0.1) -> T:
    """Poll ``done`` until it returns something true; return it, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.1f} s waiting for {what}"
        time.sleep(every)
