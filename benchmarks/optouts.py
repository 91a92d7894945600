"""Opt-out throughput over HTTP against PostgreSQL, with every acknowledged opt-out checked.

Starts the registry under gunicorn on 127.0.0.1 against a scratch PostgreSQL
database and drives ``POST /api/v1/optouts`` with ``wrk`` for a bounded time:
each wrk thread posts opt-outs for numbers no other request uses (the thread's
number and a per-thread counter). The Lua script keeps, per thread,
the ``id`` and ``phone`` of every 201 answer and counts every other status;
after the run the script checks that each acknowledged opt-out is a row of
``opt_out`` with that id and number (PostgreSQL commits with
``synchronous_commit=on``, the default). It also reports the CPU an opt-out
cost (gunicorn workers, their PostgreSQL backends, wrk, read from /proc),
which other people's load on the machine moves far less than the rate.

The load generator is wrk (C, two threads) rather than Python clients: those
took a large share of the two cores the server and PostgreSQL run on.

    .venv/bin/python benchmarks/optouts.py [--seconds 15] [--workers 4] [--connections 8] [--database bench_optouts]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg
from _common import PG_ADMIN, Server, cpu_seconds, parse_wrk, prepare, run_wrk, server_pids

# wrk gives every thread its own Lua state: ``setup`` numbers the threads and
# keeps their handles, each thread counts its own answers, and ``done`` (in the
# main state) reads the threads' tables and writes them for the Python side.
LUA = r"""
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  key, prefix, out = args[1], args[2], args[3]
  counter = 0
  acked = {}
  statuses = {}
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
end

function request()
  counter = counter + 1
  -- +86 1 3x tt nnnnnn: a valid mobile number no other request of this run uses.
  local phone = string.format("+8613%s%02d%06d", prefix, tid, counter)
  local body = '{"phone": "' .. phone .. '", "sender": "bench-cards", "channels": ["sms"], "source": "bench"}'
  return wrk.format("POST", "/api/v1/optouts", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    local id = string.match(body, '"id":%s*(%d+)')
    local phone = string.match(body, '"phone":%s*"([^"]+)"')
    acked[#acked + 1] = id .. " " .. phone
  end
end

function done(summary, latency, requests)
  -- The main state never ran init: take the file name from a thread.
  local f = io.open(threads[1]:get("out"), "w")
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      f:write("status ", status, " ", n, "\n")
    end
    for _, line in ipairs(thread:get("acked")) do
      f:write("ack ", line, "\n")
    end
  end
  local e = summary.errors
  f:write("socket ", e.connect + e.read + e.write + e.timeout, "\n")
  f:close()
end
"""


def load(
    port: int, key: str, seconds: float, connections: int, prefix: str, workdir: Path
) -> tuple[str, dict[int, int], dict[int, str], int]:
    """Run wrk once; return its report, statuses, acknowledged {id: phone} and socket errors."""
    script, out = workdir / "optouts.lua", workdir / f"acked-{prefix}.txt"
    script.write_text(LUA)
    report = run_wrk(
        f"http://127.0.0.1:{port}/api/v1/optouts",
        round(seconds),
        connections,
        script,
        script_args=(key, prefix, str(out)),
    ).output
    statuses: dict[int, int] = {}
    acked: dict[int, str] = {}
    socket_errors = 0
    for line in out.read_text().splitlines():
        kind, *rest = line.split()
        if kind == "status":
            statuses[int(rest[0])] = statuses.get(int(rest[0]), 0) + int(rest[1])
        elif kind == "ack":
            acked[int(rest[0])] = rest[1]
        else:
            socket_errors = int(rest[0])
    return report, statuses, acked, socket_errors


def durable(url: str, acked: dict[int, str]) -> tuple[int, int]:
    """Return (acknowledged opt-outs found as rows with their number, rows in opt_out)."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM opt_out o JOIN jsonb_each_text(%s::jsonb) a "
            "ON o.id = a.key::bigint AND o.phone = a.value",
            (json.dumps({str(k): v for k, v in acked.items()}),),
        ).fetchone()[0]  # type: ignore[index]
        rows = conn.execute("SELECT count(*) FROM opt_out").fetchone()[0]  # type: ignore[index]
    return int(found), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--database", default="bench_optouts", help="scratch database (dropped and recreated)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{args.database}"
    plain_url = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {args.database}")  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="anning-optouts-") as tmp:
        workdir = Path(tmp)
        env, key = prepare(url)
        server = Server(env, args.workers)
        try:
            before = os.getloadavg()
            warmup = len(load(server.port, key, 2, args.connections, "8", workdir)[2])
            # CPU per opt-out, whoever else shares the machine: what the server's
            # workers, their PostgreSQL backends and wrk used during the run.
            workers, backends = server_pids(server, plain_url, args.database)
            start = cpu_seconds(workers + backends)
            wrk_start = resource.getrusage(resource.RUSAGE_CHILDREN)
            report, statuses, acked, socket_errors = load(
                server.port, key, args.seconds, args.connections, "9", workdir
            )
            wrk_end = resource.getrusage(resource.RUSAGE_CHILDREN)
            workers2, backends2 = server_pids(server, plain_url, args.database)
            end = cpu_seconds(workers2 + backends2)
        finally:
            server.stop()
        found, rows = durable(plain_url, acked)
    figures = parse_wrk(report)
    rps, p50, p99 = figures.rps, figures.p50, figures.p99
    created = statuses.get(201, 0)
    errors = sum(n for s, n in statuses.items() if s != 201) + socket_errors
    seconds = args.seconds
    print(
        f"opt-outs over HTTP, PostgreSQL, {args.workers} gunicorn workers, "
        f"wrk 2 threads / {args.connections} connections, {seconds:g} s "
        f"(load average before {before[0]:.2f}, after {os.getloadavg()[0]:.2f})"
    )
    print(f"  acknowledged   {created:>8}  ({created / seconds:,.0f} opt-outs/s; target >= 1,000)")
    print(f"  errors         {errors:>8}  (statuses {dict(sorted(statuses.items()))})")
    print(f"  p50 latency    {p50:8.2f} ms")
    print(f"  p99 latency    {p99:8.2f} ms")

    def used(pids: list[int]) -> float:
        return sum(end.get(p, 0.0) - start.get(p, 0.0) for p in pids)

    per = 1000 / max(created, 1)
    app_ms, db_ms = used(workers2) * per, used(backends2) * per
    wrk_ms = (wrk_end.ru_utime + wrk_end.ru_stime - wrk_start.ru_utime - wrk_start.ru_stime) * per
    print(
        f"  CPU per opt-out {app_ms + db_ms + wrk_ms:6.2f} ms  (gunicorn workers {app_ms:.2f}, "
        f"PostgreSQL backends {db_ms:.2f}, wrk {wrk_ms:.2f}; 2 cores give 2.00 ms at 1,000/s)"
    )
    ok = found == created == len(acked)
    verdict = "every acknowledged opt-out is durable" if ok else "MISMATCH"
    print(f"  acknowledged and found as rows {found:>7}  ({verdict})")
    # A request in flight when wrk stops (at most one a connection, in the warm-up
    # and in the run) may commit without wrk reading its answer: a row, not an ack.
    print(
        f"  rows in opt_out {rows:>7}  (warm-up {warmup}, in flight when wrk stopped "
        f"{rows - warmup - found}, at most {2 * args.connections})"
    )
    print(f"  (wrk's own rate, all statuses: {rps:,.0f} requests/s)")
    sys.exit(0 if ok and errors == 0 else 1)


if __name__ == "__main__":
    main()
