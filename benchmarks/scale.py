"""Check latency as the registry grows: 10k, 1M and 10M holders (issue 7, item 3).

For each database:

1. for each size N, a fresh database where ``registry demo --holders N``
   builds N synthetic holders (``+86139`` and eight digits, n = 0..N-1: a
   third with preferences, half with a consent, a tenth opted out), timed;
   on PostgreSQL then ``VACUUM (ANALYZE)``, so that the rows are settled as
   in a registry that has been live a while; all sizes are kept and served at
   once, one gunicorn per size, on 127.0.0.1;
2. ``--rounds`` rounds (default 3), each visiting every size in a rotated
   order, so that a busy neighbour on the shared machine hits all sizes
   alike: ``wrk`` drives ``POST /api/v1/check`` for random holders that are
   in the registry, spread uniformly over the whole range (a Lua script) for
   ``--seconds`` (10): requests/s, p50, p99; then ``POST /api/v1/check/batch``
   with ``--batches`` (2) batches of 10,000 random holders: numbers/s;
   and, timed alone over one database connection (no HTTP, no app), the
   check's fact query, the one statement of a check that grows with holders,
   for ``--lookups`` (2,000) random holders one at a time: p50, p99 in µs;
3. each figure is the median of the rounds.

It prints a table, the ratio "latency at the largest size / latency at the
smallest" (target for 10M / 10k: within 20%, i.e. at most 1.20) and writes a
hand-made SVG line chart of p50 and p99 against holders.

    .venv/bin/python benchmarks/scale.py                                 # 10k, 1M, 10M on both databases
    .venv/bin/python benchmarks/scale.py --db postgresql --sizes 10k,1M
    .venv/bin/python benchmarks/scale.py --sizes 10k,100k --seconds 5    # a smoke run

A build that takes longer than ``--build-timeout`` (default 900 s) is given up
and reported; the sizes measured still show the trend. Needs ``wrk`` and, for
PostgreSQL, a server on 127.0.0.1:5432 (scratch databases ``bench_scale_<N>``,
dropped at the end). Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from _common import (
    LUA_HOLDERS,
    ROOT,
    Server,
    batch_rate,
    demo_registry,
    drop_postgres,
    fresh_postgres,
    load_average,
    machine,
    run_wrk,
)
from sqlalchemy import Engine, text

from registry.checks.facts import FACTS
from registry.database.engines import make_engine

PG_DB = "bench_scale"

CHECK_LUA = (
    LUA_HOLDERS
    + """
local headers = {["Authorization"] = "Bearer KEY", ["Content-Type"] = "application/json"}
function init(args) seed() end
request = function()
  local body = '{"phone": "' .. holder() .. '", "sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}'
  return wrk.format("POST", "/api/v1/check", headers, body)
end
"""
)


@dataclass
class Point:
    """One database at one size."""

    db: str
    holders: int
    build_s: float | None = None
    size_mb: float | None = None
    rps: float = math.nan
    p50: float = math.nan
    p99: float = math.nan
    batch: float = math.nan
    facts_p50: float = math.nan  # µs, the fact query alone, no HTTP
    facts_p99: float = math.nan
    load: str = ""
    note: str = ""


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * factor)


def label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return str(n)


@dataclass
class Built:
    """A registry built for one point, served while the rounds run."""

    point: Point
    url: str
    env: dict[str, str]
    key: str
    script: Path
    server: Server | None = None
    engine: Engine | None = None


def db_name(holders: int) -> str:
    return f"{PG_DB}_{holders}"


def build(db: str, holders: int, args: argparse.Namespace, workdir: Path) -> Built | Point:
    """Build one registry; return it, or the point with a note when the build gave up."""
    point = Point(db, holders)
    if db == "postgresql":
        url = fresh_postgres(db_name(holders))
    else:
        path = workdir / f"scale-{holders}.sqlite3"
        url = f"sqlite:///{path}"
    print(f"  {db}: building {holders:,} holders ...", flush=True)
    try:
        env, key, point.build_s = demo_registry(url, holders, timeout=args.build_timeout)
    except subprocess.TimeoutExpired:
        point.note = f"build gave up after {args.build_timeout:.0f} s"
        print(f"  {db}: {point.note}", flush=True)
        return point
    if db == "postgresql":
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            # Settle the fresh rows first (hint bits, visibility map), as any table
            # that has been live a while is: otherwise the first reads after the
            # build write, and autovacuum may start on this database mid-round.
            started = time.perf_counter()
            conn.execute("VACUUM (ANALYZE)")
            point.note = f"VACUUM {time.perf_counter() - started:.1f} s"
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            point.size_mb = size[0] / 2**20  # type: ignore[index]
    else:
        point.size_mb = path.stat().st_size / 2**20
    print(
        f"  {db}: built in {point.build_s:.1f} s, {point.size_mb:,.0f} MiB {point.note}", flush=True
    )
    script = workdir / f"scale-check-{db}-{holders}.lua"
    script.write_text(f"HOLDERS = {holders}\n" + CHECK_LUA.replace("KEY", key))
    return Built(point, url, env, key, script)


def fact_query(b: Built, lookups: int, seed: int) -> tuple[float, float]:
    """Time the check's fact query (the only statement that grows with holders) alone.

    One connection, ``lookups`` random holders one at a time: (p50, p99) in µs.
    """
    assert b.engine is not None
    n = b.point.holders
    rng = random.Random(seed)
    at = datetime(2030, 1, 15, 4, tzinfo=UTC)
    times = []
    with b.engine.connect() as conn:
        sender = conn.execute(text("SELECT id FROM sender WHERE code = 'acme-cards'")).scalar_one()
        for _ in range(lookups):
            params = {"phones": [f"+86139{rng.randrange(n):08d}"], "sender": sender, "at": at}
            t0 = time.perf_counter()
            conn.execute(FACTS, params).all()
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def measure(db: str, sizes: list[int], args: argparse.Namespace, workdir: Path) -> list[Point]:
    """Build every size, then measure them in interleaved rounds (a noisy neighbour hits all alike)."""
    built: list[Built] = []
    points: list[Point] = []
    try:
        for n in sizes:
            b = build(db, n, args, workdir)
            if isinstance(b, Point):
                points.append(b)
                break  # a larger size would not build either
            built.append(b)
            points.append(b.point)
        for b in built:
            b.engine = make_engine(b.url)
            b.server = Server(b.env, args.workers)
            run_wrk(f"{b.server.base}/api/v1/check", args.warmup, args.connections, b.script)
        results: dict[int, list[tuple[float, ...]]] = {}
        for r in range(args.rounds):
            # Rotate the order so that no size is always measured first or last.
            for b in built[r % len(built) :] + built[: r % len(built)]:
                assert b.server is not None
                result = run_wrk(
                    f"{b.server.base}/api/v1/check", args.seconds, args.connections, b.script
                )
                if result.errors:
                    raise RuntimeError(f"errors during the load:\n{result.output}")
                n = b.point.holders
                rng = random.Random(n * 1000 + r)
                batch = batch_rate(
                    b.server.port,
                    b.key,
                    args.batches,
                    sender="acme-cards",
                    phone=lambda _b, _i, n=n, rng=rng: f"+86139{rng.randrange(n):08d}",
                )
                f50, f99 = fact_query(b, args.lookups, n + r)
                load1 = float(load_average().split()[0])
                results.setdefault(n, []).append(
                    (result.rps, result.p50, result.p99, batch, load1, f50, f99)
                )
                print(
                    f"  {db} round {r + 1} {label(n):>4}: {result.rps:,.0f} req/s, "
                    f"p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms, batch {batch:,.0f} numbers/s, "
                    f"fact query p50 {f50:.0f} µs p99 {f99:.0f} µs "
                    f"(load {load1:.2f})",
                    flush=True,
                )
        for b in built:
            # The median round: the machine is shared, one round can be hit by a neighbour.
            rows = results[b.point.holders]
            b.point.rps = statistics.median(x[0] for x in rows)
            b.point.p50 = statistics.median(x[1] for x in rows)
            b.point.p99 = statistics.median(x[2] for x in rows)
            b.point.batch = statistics.median(x[3] for x in rows)
            b.point.load = f"{min(x[4] for x in rows):.1f}-{max(x[4] for x in rows):.1f}"
            b.point.facts_p50 = statistics.median(x[5] for x in rows)
            b.point.facts_p99 = statistics.median(x[6] for x in rows)
        return points
    finally:
        for b in built:
            if b.server is not None:
                b.server.stop()
            if b.engine is not None:
                b.engine.dispose()
        for n in sizes:
            if db == "postgresql":
                drop_postgres(db_name(n))
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{workdir / f'scale-{n}.sqlite3'}{suffix}").unlink(missing_ok=True)


def svg_chart(points: list[Point], sizes: list[int], caption: str = "") -> str:
    """A small line chart: p50 and p99 (ms) against holders (log scale), one colour per database."""
    width, height = 640, 380
    left, right, top, bottom = 64, 170, 40, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    measured = [p for p in points if not math.isnan(p.p50)]
    y_max = max([p.p99 for p in measured] + [1.0])
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if y_max / s <= 8)
    y_top = step * math.ceil(y_max / step)
    lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
    span = hi - lo or 1.0

    def x(n: int) -> float:
        return left + (math.log10(n) - lo) / span * plot_w if hi > lo else left + plot_w / 2

    def y(ms: float) -> float:
        return top + plot_h - ms / y_top * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14" font-weight="bold">'
        "POST /api/v1/check latency vs registry size</text>",
        f'<text x="{left}" y="{height - 2}" font-size="10" fill="#555">{caption}</text>',
    ]
    for i in range(int(y_top / step) + 1):
        ms = i * step
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms:g}</text>'
        )
    for n in sizes:
        parts.append(
            f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>'
            f'<text x="{x(n):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{label(n)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 14}" text-anchor="middle">holders (log scale)</text>'
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2})">latency, ms</text>'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
    )
    colours = {"postgresql": "#1f5fa8", "sqlite": "#c2561a"}
    legend_y = top + 10
    for db in sorted({p.db for p in measured}):
        series = sorted((p for p in measured if p.db == db), key=lambda p: p.holders)
        for stat, dash in (("p50", ""), ("p99", ' stroke-dasharray="6 4"')):
            coords = " ".join(f"{x(p.holders):.1f},{y(getattr(p, stat)):.1f}" for p in series)
            colour = colours.get(db, "#333")
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            )
            parts.extend(
                f'<circle cx="{x(p.holders):.1f}" cy="{y(getattr(p, stat)):.1f}" r="3" fill="{colour}"/>'
                for p in series
            )
            lx = left + plot_w + 14
            parts.append(
                f'<line x1="{lx}" x2="{lx + 28}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" '
                f'stroke-width="2"{dash}/><text x="{lx + 34}" y="{legend_y + 4}">{db} {stat}</text>'
            )
            legend_y += 20
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", default="10k,1M,10M", help="holders, e.g. 10k,1M,10M")
    parser.add_argument("--seconds", type=int, default=10, help="one wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per size (median kept)")
    parser.add_argument("--warmup", type=int, default=5, help="wrk warm-up per size, once")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--batches", type=int, default=2, help="10,000-number batches per size and round"
    )
    parser.add_argument(
        "--lookups", type=int, default=2000, help="fact queries timed alone per size and round"
    )
    parser.add_argument("--build-timeout", type=float, default=900)
    parser.add_argument("--svg", type=Path, default=ROOT / "docs" / "scale-latency.svg")
    parser.add_argument("--no-svg", action="store_true")
    parser.add_argument(
        "--plot-only", action="store_true", help="measure nothing: table and chart of --merge files"
    )
    parser.add_argument("--json", type=Path, help="also write the measured points here")
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="points of an earlier run (its --json) to show in the table and chart too",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    sizes = sorted(parse_size(s) for s in args.sizes.split(","))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if args.plot_only:
        dbs, sizes = [], []
    print(f"start: {machine()}", flush=True)
    points = []
    with tempfile.TemporaryDirectory(prefix="anning-scale-") as tmp:
        for db in dbs:
            points += measure(db, sizes, args, Path(tmp))
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps([asdict(p) for p in points], indent=1))
    for path in args.merge:
        earlier = [Point(**p) for p in json.loads(path.read_text())]
        points = [p for p in earlier if p.db not in dbs] + points
        dbs = sorted({p.db for p in earlier} - set(dbs)) + dbs
        sizes = sorted({*sizes, *(p.holders for p in earlier)})
    print(f"\nAnning scale benchmark: {machine()}")
    print(
        f"{args.workers} gunicorn workers, wrk 2 threads x {args.connections} connections, "
        f"median of {args.rounds} rounds of {args.seconds} s per size after {args.warmup} s warm-up; "
        "random holders over the whole range"
    )
    print(
        "(a shared 2-core machine: the same run moves by +-30% or more; see the 1-min load range per row)\n"
    )
    head = f"{'database':<11} {'holders':>8} {'build':>9} {'size':>9} {'check req/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'batch numbers/s':>16} {'facts p50 µs':>12} {'facts p99 µs':>12}  1-min load"
    print(head)
    print("-" * len(head))
    for p in points:
        build = f"{p.build_s:.1f} s" if p.build_s is not None else "-"
        size = f"{p.size_mb:,.0f} MiB" if p.size_mb is not None else "-"
        print(
            f"{p.db:<11} {label(p.holders):>8} {build:>9} {size:>9} {p.rps:>11,.0f} {p.p50:>8.2f} "
            f"{p.p99:>8.2f} {p.batch:>16,.0f} {p.facts_p50:>12.0f} {p.facts_p99:>12.0f}  {p.load}{'  ' + p.note if p.note else ''}"
        )
    print()
    for db in dbs:
        series = [p for p in points if p.db == db and not math.isnan(p.p50)]
        if len(series) < 2:
            continue
        small, big = series[0], series[-1]
        verdict = "met" if big.p50 / small.p50 <= 1.2 and big.p99 / small.p99 <= 1.2 else "MISSED"
        print(
            f"{db}: latency at {label(big.holders)} / at {label(small.holders)}: "
            f"p50 {big.p50 / small.p50:.2f}, p99 {big.p99 / small.p99:.2f}, "
            f"req/s {big.rps / small.rps:.2f}, batch {big.batch / small.batch:.2f}, "
            f"fact query alone p50 {big.facts_p50 / small.facts_p50:.2f} "
            f"p99 {big.facts_p99 / small.facts_p99:.2f} "
            f"(target <= 1.20: {verdict})"
        )
    if not args.no_svg and any(not math.isnan(p.p50) for p in points):
        loads = [float(x) for p in points if p.load for x in p.load.split("-")]
        caption = "medians of interleaved rounds; a shared 2-core machine" + (
            f", 1-min load {min(loads):.1f} to {max(loads):.1f}" if loads else ""
        )
        args.svg.write_text(svg_chart(points, sizes, caption))
        print(f"\nchart: {args.svg}")


if __name__ == "__main__":
    main()
