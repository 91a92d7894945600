"""What counting a request costs in each rate-limit storage: memory:// against the sqlite:// file.

    .venv/bin/python benchmarks/ratelimit.py [hits]

A check counts in the storage as Flask-Limiter does it for ``/check``: one
hit (``incr``) of the per-key limit and the two reads behind the
``X-RateLimit-*`` headers (``get``, ``get_expiry``), plus the cold-check hit
of the organization. The figures are per such request ("4 ops") and per
single hit, wall time and this process's CPU time, best of 5 interleaved runs
(the machine is shared). Then 4 processes hit one key at once through the
sqlite file: the total must be exact (no lost increments) and the rate is
the whole machine's.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from registry import ratelimit  # noqa: F401  (registers sqlite://)

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


def worker(url: str, n: int, start: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Hit one key ``n`` times through the shared file, after the start signal."""
    limiter = FixedWindowRateLimiter(storage_from_string(url))
    start.wait()
    for _ in range(n):
        limiter.hit(COLD, "cold-check", "shared")


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
        ctx = multiprocessing.get_context("fork")
        start = ctx.Event()
        workers = [ctx.Process(target=worker, args=(url, each, start)) for _ in range(procs)]
        for p in workers:
            p.start()
        time.sleep(0.5)  # let every process import and open its connection
        wall = time.perf_counter()
        start.set()
        for p in workers:
            p.join()
        wall = time.perf_counter() - wall
        total = FixedWindowRateLimiter(storage_from_string(url)).get_window_stats(
            COLD, "cold-check", "shared"
        )
        counted = COLD.amount - total.remaining
        print(
            f"  {procs} processes x {each} hits on one key: counted {counted} of {procs * each} "
            f"({'exact' if counted == procs * each else 'LOST INCREMENTS'}), "
            f"{procs * each / wall:,.0f} hits/s together"
        )


if __name__ == "__main__":
    main()
