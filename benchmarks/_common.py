"""Helpers shared by the HTTP benchmarks: scratch databases, ``registry serve``, ``wrk``.

Everything here talks to 127.0.0.1 only. The scripts that import it put this
folder on ``sys.path`` by being run as ``python benchmarks/<name>.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``/proc/loadavg`` has them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    """One line on the conditions of a run: cores, load average, time."""
    return (
        f"{os.cpu_count()} cores, load average {load_average()} (1/5/15 min), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def registry(env: dict[str, str], *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "registry"), *args], env=env, check=True, capture_output=True, text=True, **kw
    )  # type: ignore[call-overload]


def bench_env(url: str) -> dict[str, str]:
    """The environment of a benchmark registry: its database, and rate limits out of the way."""
    return {
        **os.environ,
        "REGISTRY_DATABASE_URL": url,
        "REGISTRY_SECRET_KEY": "benchmark-secret",
        "REGISTRY_RATELIMIT_CHECK": "100000000 per minute",
        "REGISTRY_RATELIMIT_COLD_CHECK": "100000000 per minute",
        "REGISTRY_RATELIMIT_WRITE": "100000000 per minute",
        "REGISTRY_RATELIMIT_READ": "100000000 per minute",
    }


def fresh_postgres(name: str) -> str:
    """Drop and create the scratch PostgreSQL database ``name``; return its URL."""
    assert not name.startswith("test"), "the test databases belong to the test suites"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres(name: str) -> None:
    assert not name.startswith("test"), "the test databases belong to the test suites"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def prepare(url: str, addresses: tuple[str, ...] = ()) -> tuple[dict[str, str], str]:
    """Migrate a fresh database and create an organization, a key and a sender (``bench-cards``,
    contacting people from ``addresses``)."""
    env = bench_env(url)
    registry(env, "db", "upgrade")
    registry(env, "org", "create", "bench", "--name", "Bench Bank")
    registry(
        env,
        "sender",
        "create",
        "bench",
        "bench-cards",
        "--name",
        "Bench Cards",
        "--category",
        "finance",
        *(part for address in addresses for part in ("--address", address)),
    )
    key = registry(env, "key", "create", "bench").stdout.strip().splitlines()[-1]
    return env, key


def demo_registry(
    url: str, holders: int, timeout: float | None = None
) -> tuple[dict[str, str], str, float]:
    """Migrate a fresh database and run ``registry demo --holders N`` in it.

    Returns the environment, acme-bank's API key (sender ``acme-cards``) and the
    seconds ``demo`` took. Synthetic holders are ``+86139`` and eight digits,
    ``n`` from 0 to N-1: a third (n % 3 == 0) with preferences, half (n even)
    with a consent, a tenth (n % 10 == 1) opted out. Raises
    ``subprocess.TimeoutExpired`` past ``timeout`` seconds.
    """
    env = bench_env(url)
    registry(env, "db", "upgrade")
    started = time.perf_counter()
    out = registry(env, "demo", "--holders", str(holders), timeout=timeout).stdout
    seconds = time.perf_counter() - started
    key = re.search(r"API key for acme-bank: (\S+)", out).group(1)  # type: ignore[union-attr]
    return env, key, seconds


class Server:
    """``registry serve`` on a free port; its gunicorn workers and their memory."""

    def __init__(self, env: dict[str, str], workers: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [str(BIN / "registry"), "serve", "--port", str(self.port), "--workers", str(workers), "--no-access-log"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The gunicorn master's children (``registry serve`` is the master itself)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def worker_rss(self) -> dict[int, int]:
        """Resident memory of each worker, in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
        rss = {}
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if m := re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE):
                rss[pid] = int(m.group(1))
        return rss

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass
class WrkResult:
    """What one ``wrk`` run reported."""

    requests: int
    seconds: float
    rps: float
    p50: float  # ms
    p99: float  # ms
    non_2xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    output: str

    @property
    def errors(self) -> int:
        return (
            self.non_2xx
            + self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.timeouts
        )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(out: str) -> WrkResult:
    """Read wrk's report (run with ``--latency``)."""

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s|m)\b", out)
        return _ms(*m.groups()) if m else float("nan")

    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    connect, read, write, timeout = (int(x) for x in sock.groups()) if sock else (0, 0, 0, 0)
    return WrkResult(
        requests=int(done.group(1)) if done else 0,
        seconds=_ms(done.group(2), done.group(3)) / 1000 if done else 0.0,
        rps=float(rps.group(1)) if rps else 0.0,
        p50=pct("50"),
        p99=pct("99"),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
        output=out,
    )


def run_wrk(
    url: str,
    seconds: int,
    connections: int,
    script: Path | None = None,
    threads: int = 2,
    timeout: int = 2,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    """Run wrk for a bounded time against 127.0.0.1 and parse its report."""
    assert url.startswith("http://127.0.0.1:"), "load goes to 127.0.0.1 only"
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout}s",
    ]  # whole seconds
    cmd.append("--latency")
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    return parse_wrk(out)


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None
) -> tuple[float, float, float]:
    """Run wrk; return (requests/s, p50 ms, p99 ms); any error fails the run."""
    result = run_wrk(url, seconds, connections, script)
    if result.errors:
        raise RuntimeError(f"errors during the load:\n{result.output}")
    return result.rps, result.p50, result.p99


def batch_rate(
    port: int,
    key: str,
    batches: int,
    sender: str = "bench-cards",
    phone: Callable[[int, int], str] = lambda b, i: f"+86139{(b * 10_000 + i) % 100_000_000:08d}",
) -> float:
    """Post batches of 10,000 numbers (``phone(batch, index)``); return numbers per second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    total, elapsed = 0, 0.0
    for b in range(batches):
        phones = [phone(b, i) for i in range(10_000)]
        body = json.dumps({"sender": sender, "channel": "sms", "phones": phones})
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/check/batch", body, headers)
        resp = conn.getresponse()
        resp.read()
        elapsed += time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"batch answered {resp.status}")
        total += 10_000
    return total / elapsed


# Lua for wrk: random synthetic holders of ``registry demo --holders N`` that
# are in the registry (a row in at least one of subscriber, consent, opt_out),
# spread uniformly over 0..N-1, and a clock for scheduling (LuaJIT's ffi).
LUA_HOLDERS = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } anning_timespec;
int clock_gettime(int clk_id, anning_timespec *tp);
]]
local ts = ffi.new("anning_timespec")
function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads_seen = 0
function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("thread_id", threads_seen)
end

function seed()
  ffi.C.clock_gettime(0, ts)
  math.randomseed(tonumber(ts.tv_nsec) + (thread_id or 0) * 7919)
  for _ = 1, 10 do math.random() end
end

-- n with none of n % 3 == 0, n even, n % 10 == 1 has no row: take n - 1 (even, a consent).
function holder()
  local n = math.random(0, HOLDERS - 1)
  if n % 2 == 1 and n % 3 ~= 0 and n % 10 ~= 1 then n = n - 1 end
  return string.format("+86139%08d", n)
end
"""


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Return the user + system CPU seconds each process has used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended, or not Linux
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def server_pids(
    server: Server, url: str | None, database: str | None
) -> tuple[list[int], list[int]]:
    """Return the gunicorn workers' pids and those of the PostgreSQL backends on ``database``."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    workers = [int(p) for p in children.read_text().split()] if children.exists() else []
    if url is None:  # SQLite: the workers do all the work
        return workers, []
    with psycopg.connect(url) as conn:
        backends = [
            int(row[0])
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
        ]
    return workers, backends
