"""Change-feed throughput over HTTP: one client following ``GET /api/v1/changes`` from 0.

Creates a scratch PostgreSQL database (or a SQLite file with ``--sqlite``),
fills it with ``--changes`` opt-out events for one organization's sender plus
as many for another organization (so the scope filter has work to do), seals
them with ``registry worker --once``, serves the registry under gunicorn on
127.0.0.1, and reads the whole feed with one keep-alive client at
``limit=1000``. Prints changes per second and the latency of a page.

    .venv/bin/python benchmarks/feed.py [--changes 100000] [--workers 2] [--passes 5] [--sqlite]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, select

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = str(Path(sys.executable).parent / "registry")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB = "bench_feed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([REGISTRY, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout


def prepare(url: str, env: dict[str, str], n: int) -> str:
    """Migrate, create two organizations with a sender each, fill the log; return a key."""
    run(env, "db", "upgrade")
    for slug in ("bench", "other"):
        run(env, "org", "create", slug, "--name", slug.title())
        run(env, "sender", "create", slug, f"{slug}-sms", "--name", slug, "--category", "retail")
    key = run(env, "key", "create", "bench").strip().splitlines()[-1]

    sys.path.insert(0, str(ROOT))
    from registry.events.models import Event
    from registry.orgs.models import Organization
    from registry.senders.models import Sender

    engine = create_engine(url)
    e = Event.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        senders = dict(
            conn.execute(
                select(Sender.code, Sender.id)  # type: ignore[call-overload]
            ).all()
        )
        orgs = dict(conn.execute(select(Organization.slug, Organization.id)).all())  # type: ignore[call-overload]
        now = datetime.now(UTC)
        rows = []
        for i in range(2 * n):
            slug = "bench" if i % 2 == 0 else "other"
            rows.append(
                {
                    "phone": f"+86139{i:08d}",
                    "type": "optout.recorded",
                    "at": now,
                    "sender_id": senders[f"{slug}-sms"],
                    "organization_id": orgs[slug],
                    "actor": f"org:{slug}",
                    "via": "api",
                    "channels": "sms",
                    "state": "opted_out",
                    "data": '{"source": "bench"}',
                }
            )
            if len(rows) == 10_000:
                conn.execute(insert(e), rows)
                rows = []
        if rows:
            conn.execute(insert(e), rows)
    engine.dispose()
    t0 = time.perf_counter()
    run(env, "worker", "--once")
    print(f"sealed {2 * n} events in {time.perf_counter() - t0:.1f} s (registry worker --once)")
    return key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--changes", type=int, default=100_000, help="changes in the reader's scope"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--passes", type=int, default=5, help="read the whole feed this often")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-feed-")
    if args.sqlite:
        url = f"sqlite:///{tmp}/bench.sqlite3"
    else:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": url,
        "REGISTRY_SECRET_KEY": "bench-secret",
        "REGISTRY_RATELIMIT_CHECK": "1000000 per minute",
        "REGISTRY_RATELIMIT_COLD_CHECK": "100000000 per minute",
        "REGISTRY_RATELIMIT_READ": "100000000 per minute",
    }
    key = prepare(url, env, args.changes)
    port = free_port()
    server = subprocess.Popen(
        [REGISTRY, "serve", "--port", str(port), "--workers", str(args.workers), "--no-access-log"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(100):
            try:
                conn.request("GET", "/api/v1/changes?limit=1", headers=headers)
                conn.getresponse().read()
                break
            except OSError:
                conn.close()
                time.sleep(0.2)
        rates, pages = [], []
        for _ in range(args.passes):
            after, total = 0, 0
            t0 = time.perf_counter()
            while True:
                p0 = time.perf_counter()
                conn.request("GET", f"/api/v1/changes?after={after}&limit=1000", headers=headers)
                resp = conn.getresponse()
                page = json.loads(resp.read())
                pages.append(time.perf_counter() - p0)
                assert resp.status == 200, page
                total += len(page["changes"])
                after = page["next"]
                if not page["has_more"]:
                    break
            assert total == args.changes, (total, args.changes)
            rates.append(total / (time.perf_counter() - t0))
    finally:
        server.terminate()
        server.wait(20)
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"{backend}, {args.workers} gunicorn worker(s): read {args.changes} changes (of "
        f"{2 * args.changes} in the log) over HTTP, one client, limit=1000, {args.passes} passes: "
        f"best {max(rates):,.0f} changes/s, median {statistics.median(rates):,.0f}; "
        f"page p50 {statistics.median(pages) * 1000:.1f} ms, "
        f"p99 {sorted(pages)[int(len(pages) * 0.99) - 1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
