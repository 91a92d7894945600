"""The machine-wide rate-limit storage (``sqlite://``, registry/ratelimit.py).

Several processes count in one file: no increment is lost and every hit sees
the count its own increment made; windows expire (on a clock the test moves,
never by sleeping); clear and reset forget; each of limits' strategies holds
across processes.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from registry import ratelimit
from registry.ratelimit import SQLiteStorage

PROCESSES = 4
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return ratelimit.machine_url(tmp_path)


class Clock:
    """A wall clock the test moves by hand, in place of ``time`` inside registry.ratelimit."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=c.time, monotonic=time.monotonic))
    return c


def _incr_many(url: str, n: int, start: Any, out: Any) -> None:
    storage = storage_from_string(url)
    start.wait()
    out.put([storage.incr("shared", expiry=3600) for _ in range(n)])


def _run(target: Any, *args: Any) -> list[Any]:
    """Run ``target(*args, start, out)`` in PROCESSES forked processes at once; return their results."""
    start, out = FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=target, args=(*args, start, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_the_url_names_a_sqlite_storage_in_the_instance_folder(tmp_path: Path) -> None:
    storage = storage_from_string(ratelimit.machine_url(tmp_path))
    assert isinstance(storage, SQLiteStorage)
    assert storage.check()
    assert (tmp_path / "ratelimits.sqlite3").exists()
    conn = sqlite3.connect(tmp_path / "ratelimits.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_increments_from_several_processes_are_never_lost(url: str) -> None:
    storage = storage_from_string(url)
    storage.incr("shared", expiry=3600)  # the parent's connection, inherited by the children
    seen = [count for counts in _run(_incr_many, url, 300) for count in counts]
    # Each hit saw the count its own increment made: every value once, none lost or doubled.
    assert sorted(seen) == list(range(2, 2 + PROCESSES * 300))
    assert storage.get("shared") == 1 + PROCESSES * 300


def test_a_window_expires_and_starts_again(url: str, clock: Clock) -> None:
    storage = storage_from_string(url)
    assert [storage.incr("k", expiry=60) for _ in range(3)] == [1, 2, 3]
    assert storage.get_expiry("k") == clock.now + 60
    clock.now += 59.9
    assert storage.incr("k", expiry=60) == 4  # the window is still the first one
    clock.now += 0.1
    assert storage.get("k") == 0
    assert storage.get_expiry("k") == clock.now
    assert storage.incr("k", expiry=60, amount=5) == 5  # a new window from this hit's amount
    assert storage.get_expiry("k") == clock.now + 60


def test_expired_counts_nobody_hits_again_are_swept(url: str, clock: Clock, tmp_path: Path) -> None:
    storage = storage_from_string(url)
    for i in range(10):
        storage.incr(f"client-{i}", expiry=60)
    storage.incr("long", expiry=3600)

    def rows() -> int:
        conn = sqlite3.connect(tmp_path / "ratelimits.sqlite3")
        try:
            return int(conn.execute("SELECT count(*) FROM counter").fetchone()[0])
        finally:
            conn.close()

    assert rows() == 11
    clock.now += ratelimit.SQLITE_SWEEP_EVERY + 1
    storage.incr("long", expiry=3600)
    assert rows() == 1
    assert storage.get("long") == 2


def test_clear_and_reset_forget_counts(url: str) -> None:
    storage = storage_from_string(url)
    storage.incr("a", expiry=60, amount=3)
    storage.incr("b", expiry=60)
    assert storage.acquire_entry("m", limit=5, expiry=60)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 1)
    assert storage.reset() == 2  # b and the moving window m
    assert storage.get("b") == 0
    assert storage.get_moving_window("m", 5, 60)[1] == 0


def test_decrement_stays_in_the_window_and_above_zero(url: str) -> None:
    storage = storage_from_string(url)
    storage.incr("k", expiry=60, amount=2)
    assert storage.decr("k") == 1
    assert storage.decr("k", amount=5) == 0
    assert storage.decr("missing") == 0


def _hit_many(url: str, strategy: str, n: int, start: Any, out: Any) -> None:
    limiter = {
        "fixed": FixedWindowRateLimiter,
        "moving": MovingWindowRateLimiter,
        "sliding": SlidingWindowCounterRateLimiter,
    }[strategy](storage_from_string(url))
    item = parse("150 per hour")
    start.wait()
    out.put(sum(limiter.hit(item, "org", "acme") for _ in range(n)))


@pytest.mark.parametrize("strategy", ["fixed", "moving", "sliding"])
def test_each_strategy_lets_exactly_its_limit_through_from_several_processes(
    url: str, strategy: str
) -> None:
    assert sum(_run(_hit_many, url, strategy, 100)) == 150  # of 400 tried


def test_a_moving_window_frees_entries_as_they_age(url: str, clock: Clock) -> None:
    limiter = MovingWindowRateLimiter(storage_from_string(url))
    item = parse("3 per minute")
    start = clock.now
    for _ in range(2):
        assert limiter.hit(item, "k")
    clock.now += 30
    assert limiter.hit(item, "k")
    assert not limiter.hit(item, "k")
    assert not limiter.hit(item, "k", cost=4)  # more than the whole limit
    stats = limiter.get_window_stats(item, "k")
    assert (stats.remaining, stats.reset_time) == (0, start + 60)
    clock.now = start + 60.5  # the first two have aged out, the third has not
    assert limiter.hit(item, "k", cost=2)
    assert not limiter.hit(item, "k")


def test_a_sliding_window_weighs_the_previous_one(url: str, clock: Clock) -> None:
    limiter = SlidingWindowCounterRateLimiter(storage_from_string(url))
    item = parse("10 per minute")
    clock.now = 60 * 31_666_667.0  # the start of a window
    assert sum(limiter.hit(item, "k") for _ in range(12)) == 10
    clock.now += 90  # half-way through the next window: the previous one weighs 5
    assert sum(limiter.hit(item, "k") for _ in range(12)) == 5
    limiter.clear(item, "k")
    assert limiter.get_window_stats(item, "k").remaining == 10


def test_a_storage_it_cannot_open_is_unhealthy(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    storage = storage_from_string(f"sqlite:///{tmp_path / 'file' / 'ratelimits.sqlite3'}")
    assert storage.check() is False


def test_the_url_must_name_a_file() -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        SQLiteStorage("sqlite:///")


def test_a_lock_file_it_cannot_open_fails_each_hit_and_blocks_none(tmp_path: Path) -> None:
    import threading

    (tmp_path / "ratelimits.sqlite3.writer-lock").mkdir()  # where the lock file should be
    storage = storage_from_string(ratelimit.machine_url(tmp_path))
    failures: list[BaseException] = []

    def hit_twice() -> None:
        for _ in range(2):
            try:
                storage.incr("k", expiry=60)
            except OSError as exc:
                failures.append(exc)

    thread = threading.Thread(target=hit_twice, daemon=True)
    thread.start()
    thread.join(timeout=60)  # a safety net, not a measure: the second hit used to hang
    assert not thread.is_alive()
    assert len(failures) == 2


def test_one_hit_answers_what_hit_and_window_stats_answer(url: str, clock: Clock) -> None:
    """``hit_with_window`` (one UPSERT) gives what limits' hit + get_window_stats give."""
    item = parse("3 per minute")
    one = FixedWindowRateLimiter(storage_from_string(url))
    answers = [ratelimit.hit_with_window(one, item, "key", "one") for _ in range(4)]
    stock = FixedWindowRateLimiter(storage_from_string(url))
    expected = []
    for _ in range(4):
        allowed = stock.hit(item, "key", "stock")
        expected.append((allowed, stock.get_window_stats(item, "key", "stock")))
    assert answers == expected
    assert [a for a, _ in answers] == [True, True, True, False]
    assert answers[0][1].remaining == 2
    assert answers[3][1].remaining == 0
    assert answers[0][1].reset_time == clock.now + 60
    clock.now += 61  # the window ends: the next hit starts a new one
    allowed, window = ratelimit.hit_with_window(one, item, "key", "one")
    assert allowed
    assert window.remaining == 2
    assert window.reset_time == clock.now + 60
    # Any other storage is asked as limits asks it.
    memory = FixedWindowRateLimiter(storage_from_string("memory://"))
    assert ratelimit.hit_with_window(memory, item, "key", "m")[1].remaining == 2
