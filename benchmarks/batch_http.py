"""Batches over HTTP, this tree's code and ``--base REV``'s side by side: numbers per second.

``benchmarks/run.py`` measures one tree at a time; on a shared machine the
load moves between two runs more than the code does. This script starts two
``registry serve`` (gunicorn, ``--workers``), one with this tree's code and
one with ``--base``'s (``git archive`` into a scratch directory, first on
``PYTHONPATH``, as benchmarks/instructions.py does), each on its own fresh
database, and posts ``POST /api/v1/check/batch`` of 10,000 numbers nobody
holds (as run.py posts them) to one and then the other, ``--rounds`` times:
the two see the same load. Printed per tree: the best, median and worst rate
of the rounds, and the server's CPU per number (gunicorn workers, and on
PostgreSQL the database's backends, from /proc).

    .venv/bin/python benchmarks/batch_http.py --base main --only sqlite
    .venv/bin/python benchmarks/batch_http.py --base main --only postgres --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from _common import (
    ROOT,
    Server,
    batch_rate,
    cpu_seconds,
    drop_postgres,
    fresh_postgres,
    machine,
    prepare,
    server_pids,
)


def export(rev: str, tree: Path) -> None:
    """Export ``rev``'s tree into ``tree``."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)


def side_by_side(
    name: str, urls: dict[str, str], trees: dict[str, str], args: argparse.Namespace
) -> None:
    """Start a server per tree on its database; alternate batches between them; print the figures."""
    servers: dict[str, tuple[Server, str]] = {}
    try:
        for label, url in urls.items():
            os.environ["PYTHONPATH"] = trees[label]  # prepare and Server copy os.environ
            env, key = prepare(url)
            servers[label] = (Server(env, args.workers), key)
        rates: dict[str, list[float]] = {label: [] for label in urls}
        cpu: dict[str, list[float]] = {label: [] for label in urls}
        for server, key in servers.values():
            batch_rate(server.port, key, 1)  # warm up
        for r in range(args.rounds):
            order = list(servers.items())  # each first in every other round
            for label, (server, key) in order if r % 2 == 0 else order[::-1]:
                pg = (
                    urls[label].replace("+psycopg", "")
                    if urls[label].startswith("postgresql")
                    else None
                )
                database = urls[label].rsplit("/", 1)[1] if pg else None
                workers, backends = server_pids(server, pg, database)
                before = cpu_seconds(workers + backends)
                # Numbers of their own each round, as run.py's batches.
                rates[label].append(
                    batch_rate(
                        server.port, key, args.batches,
                        phone=lambda b, i, r=r: f"+86139{((r * 100 + b) * 10_000 + i) % 100_000_000:08d}",
                    )
                )  # fmt: skip
                after = cpu_seconds(workers + backends)
                used = sum(after.get(p, 0.0) - before.get(p, 0.0) for p in workers + backends)
                cpu[label].append(used / (10_000 * args.batches) * 1e6)
        print(f"\n{name}; {machine()}")
        for label in urls:
            got = rates[label]
            print(
                f"  {label:<6} best {max(got):9,.0f} numbers/s (median {statistics.median(got):9,.0f},"
                f" worst {min(got):9,.0f}); server CPU {statistics.median(cpu[label]):5.2f} µs a number"
                f" (median of {args.rounds} rounds of {args.batches} batches)"
            )
    finally:
        for server, _ in servers.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the commit to compare with (git archive)")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", type=int, default=3, help="batches of 10,000 a round")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--pg-db", default="bench_batch_http", help="prefix of the two scratch databases"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anning-batch-http-") as tmp:
        work = Path(tmp)
        (work / "base").mkdir()
        export(args.base, work / "base")
        trees = {"this": str(ROOT), "base": str(work / "base")}
        print(f"base: {args.base} (exported); this: {ROOT}")
        if args.only in (None, "sqlite"):
            urls = {label: f"sqlite:///{work / label}.sqlite3" for label in trees}
            side_by_side("SQLite", urls, trees, args)
        if args.only in (None, "postgres"):
            names = {label: f"{args.pg_db}_{label}" for label in trees}
            try:
                urls = {label: fresh_postgres(db) for label, db in names.items()}
                side_by_side("PostgreSQL", urls, trees, args)
            finally:
                for db in names.values():
                    drop_postgres(db)


if __name__ == "__main__":
    main()
