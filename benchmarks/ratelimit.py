"""What counting a request costs in each rate-limit storage: memory:// against the sqlite:// file.

    PYTHONPATH=. .venv/bin/python benchmarks/ratelimit.py [hits]

A check counts in the storage as Flask-Limiter does it for ``/check``: one
hit (``incr``) of the per-key limit and the two reads behind the
``X-RateLimit-*`` headers (``get``, ``get_expiry``), plus the cold-check hit
of the organization. The figures are per such request ("4 ops") and per
single hit, wall time and this process's CPU time, best of 5 interleaved runs
(the machine is shared). Then 4 processes hit one key at once through the
sqlite file: the total must be exact (no lost increments) and the rate is
the whole machine's; flat out, then at about a check's pace (300 µs between
a process's hits), with the writers queued on the file lock (as shipped) and,
for comparison, left to SQLite's own busy wait. Last, the whole check
in-process (Flask test client, SQLite database, a cold number each time), its
CPU time with each storage, best of 3 interleaved rounds of 1,000.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from registry import (
    create_app,
    migrate,
    ratelimit,  # noqa: F401  (registers sqlite://)
)
from registry.extensions import db, limiter
from tests import factories
from tests.conftest import TEST_ENV

CHECK = parse("6000 per minute")
COLD = parse("1000000 per day")


def run(limiter: FixedWindowRateLimiter, n: int, request: bool) -> tuple[float, float]:
    """Return (wall µs, CPU µs) per request (``request``) or per hit."""
    wall, cpu = time.perf_counter(), time.process_time()
    if request:
        for _ in range(n):
            limiter.hit(CHECK, "key:abcdef", "api.check")
            limiter.get_window_stats(CHECK, "key:abcdef", "api.check")
            limiter.hit(COLD, "cold-check", "acme-bank", cost=1)
    else:
        for _ in range(n):
            limiter.hit(COLD, "cold-check", "acme-bank")
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


class NoQueue:
    """In place of the writer lock: writers left to SQLite's own busy wait (for comparison)."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def worker(url: str, n: int, pause: float, queue: bool, start: Any, out: Any) -> None:
    """Hit one key ``n`` times through the shared file, after the start signal; send the latencies."""
    storage = storage_from_string(url)
    if not queue:
        storage._writers = NoQueue()  # type: ignore[attr-defined]
    limiter = FixedWindowRateLimiter(storage)
    took = []
    start.wait()
    for _ in range(n):
        t = time.perf_counter()
        limiter.hit(COLD, "cold-check", "shared")
        took.append(time.perf_counter() - t)
        if pause:
            time.sleep(pause)
    out.put(took)


def together(url: str, procs: int, each: int, pause: float, queue: bool) -> str:
    """Run ``procs`` processes of ``each`` hits on one key at once; describe count, rate, latency."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    args = (url, each, pause, queue, start, out)
    workers = [ctx.Process(target=worker, args=args) for _ in range(procs)]
    for p in workers:
        p.start()
    time.sleep(0.5)  # let every process import and open its connection
    wall = time.perf_counter()
    start.set()
    took = sorted(t for _ in workers for t in out.get())
    wall = time.perf_counter() - wall
    for p in workers:
        p.join()
    stats = FixedWindowRateLimiter(storage_from_string(url)).get_window_stats(
        COLD, "cold-check", "shared"
    )
    counted = COLD.amount - stats.remaining
    FixedWindowRateLimiter(storage_from_string(url)).clear(COLD, "cold-check", "shared")
    n = len(took)
    return (
        f"counted {counted} of {n} ({'exact' if counted == n else 'LOST INCREMENTS'}), "
        f"{n / wall:,.0f} hits/s; latency p50 {took[n // 2] * 1e6:.0f} µs, "
        f"p99 {took[n * 99 // 100] * 1e6:.0f} µs, max {took[-1] * 1e3:.1f} ms, "
        f"{sum(t > 0.0005 for t in took) / n:.1%} over 0.5 ms"
    )


def whole_check(tmp: Path, rounds: int = 3, n: int = 1000) -> None:
    """Print the CPU time of a whole check through the app with each storage."""
    url = f"sqlite:///{tmp / 'registry.sqlite3'}"
    migrate.upgrade(url)
    apps = {}
    for name in ("memory://", "sqlite://"):
        env = {**TEST_ENV, "REGISTRY_DATABASE_URL": url}
        if name == "memory://":
            env["REGISTRY_RATELIMIT_STORAGE_URL"] = name
        apps[name] = create_app({"ENVIRON": env, "INSTANCE_PATH": str(tmp / name[:-3])})
    with apps["memory://"].app_context(), db.session() as session:
        key = factories.world(session).keys["acme"]
    headers = {"Authorization": f"Bearer {key}"}
    best: dict[str, float] = {}
    for r in range(rounds):
        for i, (name, app) in enumerate(apps.items()):
            limiter.init_app(app)  # one Limiter object: the last init_app's storage counts
            client = app.test_client()
            phones = [f"+86139{r}{i}{j:06d}" for j in range(n)]
            cpu = time.process_time()
            for phone in phones:
                body = {"phone": phone, "sender": "acme-cards", "channel": "sms"}
                assert client.post("/api/v1/check", json=body, headers=headers).status_code == 200
            took = (time.process_time() - cpu) / n * 1e6
            best[name] = min(best.get(name, took), took)
    print(f"a whole check in-process, CPU, best of {rounds} rounds of {n}")
    for name, took in best.items():
        print(f"  {name:10} {took:7.0f} µs")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ratelimits.sqlite3'}"
        limiters = {
            "memory://": FixedWindowRateLimiter(storage_from_string("memory://")),
            "sqlite://": FixedWindowRateLimiter(storage_from_string(url)),
        }
        best: dict[tuple[str, bool], tuple[float, float]] = {}
        for _ in range(5):
            for name, limiter in limiters.items():
                for request in (False, True):
                    got = run(limiter, n, request)
                    key = (name, request)
                    best[key] = min(best.get(key, got), got)
        print(f"{n} per run, best of 5; µs wall / µs CPU")
        for name in limiters:
            hit_wall, hit_cpu = best[(name, False)]
            req_wall, req_cpu = best[(name, True)]
            print(
                f"  {name:10} one hit {hit_wall:6.1f} / {hit_cpu:6.1f}   "
                f"a check's 4 ops {req_wall:6.1f} / {req_cpu:6.1f}   "
                f"({1e6 / hit_wall:,.0f} hits/s in one process)"
            )

        procs, each = 4, n // 4
        print(f"{procs} processes x {each} hits on one key at once (sqlite://)")
        print(f"  flat out:                  {together(url, procs, each, 0, True)}")
        for _ in range(2):
            # About a check's pace per worker; SQLite's own busy wait sleeps 1 ms and more.
            print(f"  300 µs apart, file lock:   {together(url, procs, each // 2, 3e-4, True)}")
            print(f"  300 µs apart, SQLite busy: {together(url, procs, each // 2, 3e-4, False)}")
    with tempfile.TemporaryDirectory() as tmp:
        whole_check(Path(tmp))


if __name__ == "__main__":
    main()
