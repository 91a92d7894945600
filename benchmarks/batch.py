"""Batches and scrubs in-process: numbers per second and CPU per number, best and spread.

The HTTP figures of benchmarks/run.py move with the machine's load; this
script calls the registry's WSGI app directly (``POST /api/v1/check/batch``
with a prebuilt environ, no socket) and ``registry scrub`` in this process,
and prints for each round the wall-clock rate and the process CPU time per
number (``time.process_time``: what this process spent, whatever the other
cores do; on PostgreSQL also the CPU of the database's backends, from /proc).

- ``batch``: ``--rounds`` rounds of ``--batches`` batches of 10,000 numbers
  nobody in the registry holds (as benchmarks/run.py posts them);
- ``scrub``: with ``--rows`` consent rows built as benchmarks/run.py builds
  them (``--rows``/10 holders × 10 senders), ``registry scrub`` of
  ``--numbers`` numbers, half of them holders with a consent of the sender.

    .venv/bin/python benchmarks/batch.py --only sqlite --rounds 5
    .venv/bin/python benchmarks/batch.py --only postgres --rows 10000000 --numbers 1000000 --scrubs 2

PostgreSQL uses the scratch database ``--pg-db`` (default ``bench_batch``).

``--cache DIR`` builds the registry with its ``--rows`` consent rows once and
reuses it: the SQLite file is kept in ``DIR`` and copied for each run, the
PostgreSQL one is kept as the database ``<pg-db>_<rows>`` and each run's
database is a copy of it (``CREATE DATABASE ... TEMPLATE``), so every run,
whichever code it measures, starts from the same untouched registry.
``--base REV`` measures ``REV``'s code (``git archive``, first on the path of
this process and of the registry commands it starts; as benchmarks/instructions.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    PG_ADMIN,
    ROOT,
    bench_env,
    cpu_seconds,
    drop_postgres,
    fresh_postgres,
    machine,
    prepare,
)
from run import fill_consents


def _environ(key: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/check/batch", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
    }  # fmt: skip


def _body(b: int) -> bytes:
    phones = [f"+86139{(b * 10_000 + i) % 100_000_000:08d}" for i in range(10_000)]
    return json.dumps({"sender": "bench-cards", "channel": "sms", "phones": phones}).encode()


def _backends(url: str | None) -> list[int]:
    """The PostgreSQL backends serving the app (none on SQLite)."""
    if url is None:
        return []
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def batches(
    app: Any, key: str, rounds: int, per_round: int, start: int = 0, pg: str | None = None
) -> list[tuple[float, float, float]]:
    """Return (numbers/s, CPU µs per number here, in PostgreSQL's backends) for each round."""
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    out = []
    n = start
    for _ in range(rounds):
        bodies = [_body(n + i) for i in range(per_round)]
        n += per_round
        pids = _backends(pg)
        b0 = cpu_seconds(pids)
        w0, c0 = time.perf_counter(), time.process_time()
        for body in bodies:
            for _chunk in app(_environ(key, body), start_response):
                pass
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        b1 = cpu_seconds(pids)
        db = sum(b1.get(p, 0.0) - b0.get(p, 0.0) for p in pids)
        numbers = 10_000 * per_round
        out.append((numbers / wall, cpu / numbers * 1e6, db / numbers * 1e6))
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{len(bad)} batches answered {bad[0]}")
    return out


def scrub(
    app: Any, numbers: int, workdir: Path, pg: str | None = None
) -> tuple[float, float, float]:
    """Run ``registry scrub`` in this process; return (seconds, CPU seconds here, in PostgreSQL)."""
    src, out = workdir / "scrub-in.csv", workdir / "scrub-out.csv"
    with src.open("w") as fh:
        fh.write("phone\n")
        for i in range(numbers):
            fh.write(f"+86138{(i * 7) % 2_000_000:08d}\n")
    runner = app.test_cli_runner()
    before = _backends(pg)
    b0 = cpu_seconds(before)
    w0, c0 = time.perf_counter(), time.process_time()
    with app.app_context():
        result = runner.invoke(
            args=["scrub", str(src), "--sender", "bench-cards", "--channel", "sms", "-o", str(out)]
        )
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    pids = sorted(set(before) | set(_backends(pg)))
    b1 = cpu_seconds(pids)
    db = sum(b1.get(p, 0.0) - b0.get(p, 0.0) for p in pids)
    if result.exit_code != 0:
        raise SystemExit(f"scrub failed: {result.output}") from result.exception
    lines = sum(1 for _ in out.open())
    assert lines == numbers + 1, lines
    return wall, cpu, db


def _summary(label: str, figures: list[tuple[float, float, float]]) -> None:
    rates = [r for r, _, _ in figures]
    cpus = [c for _, c, _ in figures]
    dbs = [d for _, _, d in figures]
    print(
        f"  {label:<10} best {max(rates):9,.0f} numbers/s  (median {statistics.median(rates):9,.0f},"
        f" worst {min(rates):9,.0f});  CPU {min(cpus):5.2f} µs a number (median "
        f"{statistics.median(cpus):5.2f})"
        + (f" + PostgreSQL {min(dbs):5.2f} µs" if any(dbs) else "")
    )


def _built(url: str, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, str], str, float]:
    """Prepare the registry at ``url`` with its consent rows, or copy a cached one there.

    Returns the environment, the API key and the seconds the consent rows took
    to build (0 for a copy).
    """
    if args.cache is None:
        env, key = prepare(url)
        return env, key, fill_consents(url, args.rows) if args.scrubs else 0.0
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        kept, target = cache / f"sqlite-{args.rows}.sqlite3", Path(url.removeprefix("sqlite:///"))
        keyfile = cache / f"sqlite-{args.rows}.key"
        seconds = 0.0
        if not keyfile.exists():
            env, key = prepare(f"sqlite:///{kept}")
            seconds = fill_consents(f"sqlite:///{kept}", args.rows)
            keyfile.write_text(key)
        shutil.copyfile(kept, target)

        return bench_env(url), keyfile.read_text(), seconds
    template = f"{args.pg_db}_{args.rows}"
    keyfile = cache / f"{template}.key"
    seconds = 0.0
    if not keyfile.exists():
        kept = fresh_postgres(template)
        _, key = prepare(kept)
        seconds = fill_consents(kept, args.rows)
        keyfile.write_text(key)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        database = url.rsplit("/", 1)[1]
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {database} TEMPLATE {template}")  # type: ignore[arg-type]

    return bench_env(url), keyfile.read_text(), seconds


def run(name: str, url: str, args: argparse.Namespace, workdir: Path) -> None:
    env, key, seconds = _built(url, args, workdir)
    os.environ.update(env)
    from registry import create_app

    app = create_app()
    pg = url.replace("+psycopg", "") if url.startswith("postgresql") else None
    batches(app, key, 1, 1, start=10_000)  # warm up
    import registry

    print(f"\n{name}; {machine()}; code {Path(registry.__file__).parent}")
    if args.rounds:
        figures = batches(app, key, args.rounds, args.batches, pg=pg)
        for rate, cpu, db in figures:
            print(f"    round: {rate:9,.0f} numbers/s, CPU {cpu:5.2f} µs a number"
                  + (f" + PostgreSQL {db:5.2f} µs" if pg else ""))  # fmt: skip
        _summary("batch", figures)
    if args.scrubs:
        if seconds:
            print(f"  built {args.rows:,} consent rows in {seconds:.1f} s")
        else:
            print(f"  {args.rows:,} consent rows copied from {args.cache}")
        for _ in range(args.scrubs):
            wall, cpu, db = scrub(app, args.numbers, workdir, pg)
            print(
                f"  scrub {args.numbers:,} numbers: {wall:6.2f} s, CPU {cpu:6.2f} s"
                + (f" + PostgreSQL {db:6.2f} s" if pg else "")
            )


def _export(rev: str, tree: Path) -> None:
    """Put ``rev``'s tree first on the path of this process and of the commands it starts."""
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    os.environ["PYTHONPATH"] = str(tree)  # bench_env copies os.environ
    sys.path.insert(0, str(tree))
    print(f"code measured: {rev} (exported)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=5, help="batches of 10,000 a round")
    parser.add_argument("--scrubs", type=int, default=0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--pg-db", default="bench_batch")
    parser.add_argument("--cache", default=None, help="keep the built registry here and reuse it")
    parser.add_argument("--base", default=None, help="measure this commit's code (git archive)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anning-batch-") as tmp:
        workdir = Path(tmp)
        if args.base:
            _export(args.base, workdir / "base")
        if args.only == "sqlite":
            run("SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}", args, workdir)
        else:
            try:
                run("PostgreSQL", fresh_postgres(args.pg_db), args, workdir)
            finally:
                drop_postgres(args.pg_db)


if __name__ == "__main__":
    main()
