"""Core benchmarks: single check vs a trivial endpoint, batch checks, and scrub at scale.

For each database (SQLite file, PostgreSQL), in one run:

1. the registry under gunicorn on 127.0.0.1; ``wrk`` drives ``GET /healthz`` (a
   trivial JSON endpoint of the same app) and then ``POST /api/v1/check``:
   requests/s, p50, p99 and the ratio check/trivial;
2. ``POST /api/v1/check/batch`` with batches of 10,000 numbers: numbers/s;
3. ``registry scrub`` of 1,000,000 numbers against a registry holding
   10,000,000 consent rows: seconds.

    .venv/bin/python benchmarks/run.py                 # full sizes (takes a while)
    .venv/bin/python benchmarks/run.py --quick         # small sizes, a smoke run
    .venv/bin/python benchmarks/run.py --only sqlite --skip-scrub

Needs ``wrk`` (Debian package) and PostgreSQL on 127.0.0.1:5432 for the
PostgreSQL part. Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _common import (
    Server,
    batch_rate,
    cpu_seconds,
    fresh_postgres,
    prepare,
    registry,
    server_pids,
    wrk,
)

PG_DB = "bench_core"

LUA = """
counter = 0
request = function()
  counter = counter + 1
  local phone = string.format("+86138%08d", counter % 100000)
  local body = '{"phone": "' .. phone .. '", "sender": "bench-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}'
  return wrk.format("POST", "/api/v1/check", {["Authorization"] = "Bearer KEY", ["Content-Type"] = "application/json"}, body)
end
"""


@dataclass
class Figures:
    """What one database's run measured."""

    name: str
    rows: dict[str, str] = field(default_factory=dict)


def fill_consents(url: str, rows: int) -> float:
    """Insert ``rows`` active consents over 1M holders and 10 senders; return seconds."""
    t0 = time.perf_counter()
    env = {**os.environ, "REGISTRY_DATABASE_URL": url}
    for i in range(9):
        registry(
            env,
            "sender",
            "create",
            "bench",
            f"bench-other{i}",
            "--name",
            f"Other {i}",
            "--category",
            "retail",
        )
    # Row n is holder n % 1M and sender (n / 1M) % 10 + 1 (integer division): every holder
    # gets one consent from each of the ten senders. (n % 10 would give holder h ten rows of
    # one sender, since n and n + 1M agree mod 10.)
    select = (
        "SELECT '+86138' || substr('00000000' || (n % 1000000), -8, 8), (n / 1000000) % 10 + 1, 1, 'sms,voice', "
        "'active', 'web_form', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00'"
    )
    cols = (
        "phone, sender_id, organization_id, channels, status, evidence_method, "
        "evidence_captured_at, created_at, activated_at"
    )
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            f"INSERT INTO consent ({cols}) WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n + 1 < {rows}) {select} FROM seq"
        )
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
    else:
        with psycopg.connect(
            url.replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as conn:
            pg_select = select.replace(
                "substr('00000000' || (n % 1000000), -8, 8)", "lpad((n % 1000000)::text, 8, '0')"
            )
            conn.execute(
                f"INSERT INTO consent ({cols}) {pg_select} FROM generate_series(0, {rows - 1}) AS n"
            )  # type: ignore[arg-type]
            conn.execute("VACUUM ANALYZE consent")
    return time.perf_counter() - t0


def scrub(env: dict[str, str], numbers: int, workdir: Path) -> float:
    """Time ``registry scrub`` of ``numbers`` numbers; return seconds."""
    src, out = workdir / "scrub-in.csv", workdir / "scrub-out.csv"
    with src.open("w") as fh:
        fh.write("phone\n")
        for i in range(numbers):
            fh.write(f"+86138{(i * 7) % 2_000_000:08d}\n")
    t0 = time.perf_counter()
    registry(env, "scrub", str(src), "--sender", "bench-cards", "--channel", "sms", "-o", str(out))
    elapsed = time.perf_counter() - t0
    lines = sum(1 for _ in out.open())
    assert lines == numbers + 1, lines
    return elapsed


def run(name: str, url: str, args: argparse.Namespace, workdir: Path) -> Figures:
    figures = Figures(name)
    env, key = prepare(url)
    script = workdir / "check.lua"
    script.write_text(LUA.replace("KEY", key))
    server = Server(env, args.workers)
    try:
        base = f"http://127.0.0.1:{server.port}"
        wrk(f"{base}/healthz", 2, args.connections)  # warm up
        wrk(f"{base}/api/v1/check", 2, args.connections, script)
        pg = url.replace("+psycopg", "") if url.startswith("postgresql") else None
        database = url.rsplit("/", 1)[1] if pg else None

        def measured(target: str, script: Path | None = None) -> tuple[float, float, float, str]:
            """wrk figures, and the server's CPU per request (workers + PostgreSQL backends)."""
            workers, backends = server_pids(server, pg, database)
            before = cpu_seconds(workers + backends)
            rps, p50, p99 = wrk(f"{base}{target}", args.seconds, args.connections, script)
            after = cpu_seconds(workers + backends)
            per = 1000 / (rps * args.seconds)

            def used(pids: list[int]) -> float:
                return sum(after.get(p, 0.0) - before.get(p, 0.0) for p in pids) * per

            cpu = f"  CPU {used(workers):.2f} ms" + (f" + db {used(backends):.2f} ms" if pg else "")
            return rps, p50, p99, cpu

        t_rps, t50, t99, t_cpu = measured("/healthz")
        c_rps, c50, c99, c_cpu = measured("/api/v1/check", script)
        figures.rows["trivial GET /healthz"] = (
            f"{t_rps:8.0f} req/s  p50 {t50:6.2f} ms  p99 {t99:6.2f} ms{t_cpu}"
        )
        figures.rows["POST /api/v1/check"] = (
            f"{c_rps:8.0f} req/s  p50 {c50:6.2f} ms  p99 {c99:6.2f} ms{c_cpu}"
        )
        figures.rows["check / trivial"] = f"{c_rps / t_rps:8.0%}"
        figures.rows["batch (10,000 a request)"] = (
            f"{batch_rate(server.port, key, args.batches):8.0f} numbers/s"
        )
    finally:
        server.stop()
    if not args.skip_scrub:
        seconds = fill_consents(url, args.rows)
        figures.rows[f"build {args.rows:,} consent rows"] = f"{seconds:8.1f} s"
        figures.rows[f"scrub {args.numbers:,} numbers"] = (
            f"{scrub(env, args.numbers, workdir):8.1f} s"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--skip-scrub", action="store_true")
    parser.add_argument(
        "--pg-db", default=PG_DB, help="the scratch PostgreSQL database (dropped and made anew)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.batches, args.rows, args.numbers = 3, 2, 100_000, 10_000
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    results = []
    with tempfile.TemporaryDirectory(prefix="anning-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sqlite"):
            results.append(run("SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}", args, workdir))
        if args.only in (None, "postgres"):
            results.append(run("PostgreSQL", fresh_postgres(args.pg_db), args, workdir))
    print(
        f"\nAnning core benchmark ({os.cpu_count()} cores, {args.workers} gunicorn workers, wrk {args.connections} connections)"
    )
    for figures in results:
        print(f"\n{figures.name}")
        for label, value in figures.rows.items():
            print(f"  {label:<32} {value}")


if __name__ == "__main__":
    main()
