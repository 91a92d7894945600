"""Load and soak: a realistic mix at 80% of capacity for 10 minutes (issue 7, item 7).

One server (``registry serve``, gunicorn) on a registry of ``--holders``
synthetic holders built by ``registry demo --holders N``; ``wrk`` with a Lua
script that picks each request by weighted random:

* 90% ``POST /api/v1/check`` for a random holder,
* 5% ``POST /api/v1/check/batch`` of ``--batch-size`` (500) random holders,
* 5% writes: half ``POST /api/v1/optouts``, half ``POST /api/v1/consents``
  (pending, the registry texts the holder through the console SMS backend).

First the capacity: the mix as fast as it goes for ``--capacity-seconds``
(20), measured again after the soak (the neighbours on a shared machine
move it). Then the soak: the mix at ``--load`` (80%) of that rate for
``--minutes`` (10), as consecutive wrk runs of ``--interval`` (10) seconds,
each paced by the Lua script (a per-thread schedule of send times on a
monotonic clock: open-loop while the connections keep up). After each
interval the resident memory (``VmRSS``) of every gunicorn worker is read
from ``/proc``. Printed per interval: requests, errors (non-2xx, socket
errors, timeouts over 2 s), req/s, p50, p99 of the mix, worker RSS, load average.

Fails (exit 1) on any error, on a worker that was replaced, or when the
workers' total RSS grows more than ``--rss-growth`` (20%) between minute 2
(or half-time, for runs shorter than 4 minutes) and the end.

    .venv/bin/python benchmarks/soak.py --minutes 1          # a short run to try it
    .venv/bin/python benchmarks/soak.py                      # PostgreSQL, 10 minutes

Needs ``wrk`` and, for PostgreSQL, a server on 127.0.0.1:5432 (scratch
database ``bench_soak``). Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import (
    LUA_HOLDERS,
    Server,
    WrkResult,
    demo_registry,
    fresh_postgres,
    load_average,
    machine,
    run_wrk,
)

PG_DB = "bench_soak"

MIX_LUA = (
    LUA_HOLDERS
    + """
local headers = {["Authorization"] = "Bearer KEY", ["Content-Type"] = "application/json"}
local batches = {}
local interval = 0   -- ms between two sends of this thread; 0: as fast as it goes
local next_at = nil
n_check, n_batch, n_optout, n_consent = 0, 0, 0, 0

function init(args)
  seed()
  if RATE > 0 then interval = 1000 * THREADS / RATE end
  for b = 1, 16 do
    local phones = {}
    for i = 1, BATCH_SIZE do phones[i] = '"' .. holder() .. '"' end
    batches[b] = '{"sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00", "phones": ['
      .. table.concat(phones, ", ") .. ']}'
  end
end

-- Pacing: each send takes the next slot of this thread's schedule; a thread
-- more than a second behind (the server stalled) starts afresh rather than burst.
function delay()
  if interval == 0 then return 0 end
  local t = now_ms()
  if next_at == nil or next_at < t - 1000 then next_at = t end
  local d = next_at - t
  next_at = next_at + interval
  if d < 0 then return 0 end
  return d
end

request = function()
  local r = math.random()
  if r < 0.90 then
    n_check = n_check + 1
    return wrk.format("POST", "/api/v1/check", headers,
      '{"phone": "' .. holder() .. '", "sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}')
  elseif r < 0.95 then
    n_batch = n_batch + 1
    return wrk.format("POST", "/api/v1/check/batch", headers, batches[math.random(1, #batches)])
  elseif r < 0.975 then
    n_optout = n_optout + 1
    return wrk.format("POST", "/api/v1/optouts", headers,
      '{"phone": "' .. holder() .. '", "sender": "acme-cards", "channels": ["sms"], "source": "call"}')
  else
    n_consent = n_consent + 1
    return wrk.format("POST", "/api/v1/consents", headers,
      '{"phone": "' .. holder() .. '", "sender": "acme-cards", "channels": ["sms", "voice"], '
      .. '"evidence": {"method": "web_form", "captured_at": "2026-01-01T10:00:00Z", '
      .. '"wording": "I agree that Acme Bank may send me offers by SMS and phone."}}')
  end
end

local all_threads = {}
local base_setup = setup
function setup(thread)
  base_setup(thread)
  table.insert(all_threads, thread)
end

function done(summary, latency, requests)
  local c, b, o, k = 0, 0, 0, 0
  for _, t in ipairs(all_threads) do
    c = c + t:get("n_check"); b = b + t:get("n_batch")
    o = o + t:get("n_optout"); k = k + t:get("n_consent")
  end
  io.write(string.format("mix: check %d batch %d optout %d consent %d\\n", c, b, o, k))
end
"""
)


@dataclass
class Interval:
    """One paced wrk run and the memory after it."""

    t: float  # seconds since the soak started, at the end of the interval
    requests: int
    rps: float
    p50: float
    p99: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    rss_kib: dict[int, int]
    load: str
    mix: dict[str, int] = field(default_factory=dict)

    @property
    def rss_mib(self) -> float:
        return sum(self.rss_kib.values()) / 1024


def mix_of(result: WrkResult) -> dict[str, int]:
    m = re.search(r"mix: check (\d+) batch (\d+) optout (\d+) consent (\d+)", result.output)
    return (
        dict(zip(("check", "batch", "optout", "consent"), map(int, m.groups()), strict=True))
        if m
        else {}
    )


def script(workdir: Path, key: str, holders: int, batch_size: int, rate: float) -> Path:
    path = workdir / f"mix-{rate:.0f}.lua"
    head = f"HOLDERS = {holders}\nBATCH_SIZE = {batch_size}\nRATE = {rate:.3f}\nTHREADS = 2\n"
    path.write_text(head + MIX_LUA.replace("KEY", key))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--holders", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=int, default=10, help="seconds per sample")
    parser.add_argument("--capacity-seconds", type=int, default=20)
    parser.add_argument("--load", type=float, default=0.8, help="fraction of capacity")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rss-growth", type=float, default=0.20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    print(f"start: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="anning-soak-") as tmp:
        workdir = Path(tmp)
        if args.db == "postgresql":
            url = fresh_postgres(PG_DB)
        else:
            url = f"sqlite:///{workdir / 'soak.sqlite3'}"
        env, key, build_s = demo_registry(url, args.holders)
        print(f"built {args.holders:,} holders in {build_s:.1f} s ({args.db})", flush=True)
        server = Server(env, args.workers)
        try:
            unpaced = script(workdir, key, args.holders, args.batch_size, 0)
            run_wrk(f"{server.base}/api/v1/check", 5, args.connections, unpaced)  # warm up
            cap = run_wrk(
                f"{server.base}/api/v1/check", args.capacity_seconds, args.connections, unpaced
            )
            cap_load = load_average()
            target = args.load * cap.rps
            print(
                f"capacity: {cap.rps:,.1f} req/s (p50 {cap.p50:.1f} ms, p99 {cap.p99:.1f} ms, "
                f"{cap.errors} errors, mix {mix_of(cap)}, load {cap_load}); "
                f"soak at {args.load:.0%}: {target:,.1f} req/s",
                flush=True,
            )
            paced = script(workdir, key, args.holders, args.batch_size, target)
            pids = set(server.worker_pids())
            rss0 = server.worker_rss()
            print(
                f"\n{'t s':>5} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'non-2xx':>7} {'sock err':>8} {'timeout':>7} {'RSS MiB':>8}  per worker MiB / load avg"
            )
            print(
                f"{0:>5} {'':>8} {'':>7} {'':>7} {'':>7} {'':>7} {'':>8} {'':>7} {sum(rss0.values()) / 1024:>8.1f}"
            )
            intervals: list[Interval] = []
            start = time.monotonic()
            count = max(1, round(args.minutes * 60 / args.interval))
            for _ in range(count):
                r = run_wrk(f"{server.base}/api/v1/check", args.interval, args.connections, paced)
                rss = server.worker_rss()
                iv = Interval(
                    t=time.monotonic() - start,
                    requests=r.requests,
                    rps=r.rps,
                    p50=r.p50,
                    p99=r.p99,
                    non_2xx=r.non_2xx,
                    socket_errors=r.connect_errors + r.read_errors + r.write_errors,
                    timeouts=r.timeouts,
                    rss_kib=rss,
                    load=load_average(),
                    mix=mix_of(r),
                )
                intervals.append(iv)
                per = " ".join(f"{v / 1024:.0f}" for v in rss.values())
                print(
                    f"{iv.t:>5.0f} {iv.requests:>8} {iv.rps:>7.1f} {iv.p50:>7.1f} {iv.p99:>7.1f} "
                    f"{iv.non_2xx:>7} {iv.socket_errors:>8} {iv.timeouts:>7} {iv.rss_mib:>8.1f}  "
                    f"{per} / {iv.load}",
                    flush=True,
                )
            replaced = set(server.worker_pids()) != pids
            # Capacity again: on a shared machine the neighbours' load moves it during the run.
            after = run_wrk(
                f"{server.base}/api/v1/check", args.capacity_seconds, args.connections, unpaced
            )
            after_load = load_average()
        finally:
            server.stop()

    total = sum(i.requests for i in intervals)
    elapsed = intervals[-1].t
    non2xx = sum(i.non_2xx for i in intervals)
    sock = sum(i.socket_errors for i in intervals)
    timeouts = sum(i.timeouts for i in intervals)
    mix = {
        k: sum(i.mix.get(k, 0) for i in intervals) for k in ("check", "batch", "optout", "consent")
    }
    base_t = min(120.0, elapsed / 2)
    base = next(i for i in intervals if i.t >= base_t)
    growth = intervals[-1].rss_mib / base.rss_mib - 1
    p50s = sorted(i.p50 for i in intervals)
    p99s = sorted(i.p99 for i in intervals)
    print(f"\nAnning load and soak: {machine()}")
    print(
        f"{args.db}, {args.holders:,} holders, {args.workers} gunicorn workers, wrk 2 threads x "
        f"{args.connections} connections; mix 90% check / 5% batch of {args.batch_size} / "
        f"5% writes (opt-outs and consents)"
    )
    print(
        f"  capacity (unpaced, {args.capacity_seconds} s)  {cap.rps:10,.1f} req/s  (p50 {cap.p50:.1f} ms, p99 {cap.p99:.1f} ms; load {cap_load})"
    )
    print(
        f"  capacity after the soak      {after.rps:10,.1f} req/s  (load {after_load}; {after.errors} errors)"
    )
    print(f"  soak target ({args.load:.0%})             {target:10,.1f} req/s")
    print(
        f"  soak achieved                {total / elapsed:10,.1f} req/s  ({total:,} requests in {elapsed:.0f} s)"
    )
    print(f"  requests by type             {mix}")
    print(
        f"  p50 per interval             median {p50s[len(p50s) // 2]:.1f} ms, worst {p50s[-1]:.1f} ms"
    )
    print(
        f"  p99 per interval             median {p99s[len(p99s) // 2]:.1f} ms, worst {p99s[-1]:.1f} ms"
    )
    print(f"  errors                       non-2xx {non2xx}, socket {sock}, timeouts {timeouts}")
    print(
        f"  worker RSS                   {base.rss_mib:.1f} MiB at {base.t:.0f} s -> "
        f"{intervals[-1].rss_mib:.1f} MiB at the end ({growth:+.1%}; limit +{args.rss_growth:.0%})"
    )
    print(f"  workers replaced             {'yes' if replaced else 'no'}")
    failures = []
    if non2xx or sock or timeouts:
        failures.append("errors")
    if growth > args.rss_growth:
        failures.append(f"RSS grew {growth:.1%}")
    if replaced:
        failures.append("a worker was replaced")
    print(
        f"  verdict                      {'FAIL: ' + ', '.join(failures) if failures else 'pass'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "db": args.db,
                    "holders": args.holders,
                    "capacity": {"rps": cap.rps, "p50": cap.p50, "p99": cap.p99, "load": cap_load},
                    "target": target,
                    "capacity_after": {"rps": after.rps, "load": after_load},
                    "intervals": [asdict(i) for i in intervals],
                    "failures": failures,
                },
                indent=1,
            )
        )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
