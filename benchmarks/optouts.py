"""Opt-out throughput over HTTP against PostgreSQL, with every acknowledged opt-out checked.

Starts the registry under gunicorn on 127.0.0.1 against a scratch PostgreSQL
database, posts opt-outs from several client processes over keep-alive
connections for a bounded time, then counts the rows: every 201 must be a
durable row (PostgreSQL commits with synchronous_commit=on, the default).

    .venv/bin/python benchmarks/optouts.py [--seconds 20] [--clients 4] [--workers 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB = "bench_optouts"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare() -> str:
    """Create a fresh database, migrate it, and return an API key for a sender."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    env = {**os.environ, "REGISTRY_DATABASE_URL": URL}
    registry = str(ROOT / ".venv" / "bin" / "registry")
    subprocess.run([registry, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [registry, "org", "create", "bench", "--name", "Bench"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [registry, "sender", "create", "bench", "bench-sms", "--name", "Bench", "--category", "retail"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [registry, "key", "create", "bench"], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def client(port: int, key: str, index: int, seconds: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    """Post opt-outs for distinct numbers until time is up; report (acks, errors, latencies)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    acks = errors = 0
    lat: list[float] = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        phone = f"+86139{index:02d}{n:06d}"
        body = json.dumps(
            {"phone": phone, "sender": "bench-sms", "channels": ["sms"], "source": "bench"}
        )
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/optouts", body, headers)
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t0)
        if resp.status == 201:
            acks += 1
        else:
            errors += 1
        n += 1
    queue.put((acks, errors, lat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    key = prepare()
    port = free_port()
    env = {
        **os.environ,
        "REGISTRY_DATABASE_URL": URL,
        "REGISTRY_RATELIMIT_WRITE": "10000000 per minute",
        "REGISTRY_SECRET_KEY": "bench",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "registry"), "serve", "--port", str(port), "--workers", str(args.workers), "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        procs = [
            mp.Process(target=client, args=(port, key, i, args.seconds, queue))
            for i in range(args.clients)
        ]
        start = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    acks = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB}") as conn:
        rows = conn.execute("SELECT count(*) FROM opt_out").fetchone()[0]  # type: ignore[index]
    print(
        f"opt-outs over HTTP, PostgreSQL, {args.workers} gunicorn workers, {args.clients} clients, {elapsed:.1f} s"
    )
    print(f"  acknowledged   {acks:>8}  ({acks / elapsed:,.0f} opt-outs/s; target >= 1,000)")
    print(f"  errors         {errors:>8}")
    print(f"  p50 latency    {lat[len(lat) // 2] * 1000:8.2f} ms")
    print(f"  p99 latency    {lat[int(len(lat) * 0.99)] * 1000:8.2f} ms")
    print(
        f"  rows in opt_out {rows:>7}  ({'every acknowledged opt-out is durable' if rows == acks else 'MISMATCH'})"
    )
    sys.exit(0 if rows == acks and errors == 0 else 1)


if __name__ == "__main__":
    main()
