"""What the frequency cap (issue 19) costs a check: side by side in one run, and in instructions.

Three drivers answer ``POST /api/v1/check`` through the WSGI app directly (a
prebuilt environ, no socket), each for a holder with a consent of acme-cards:

- ``before``: the code this branch started from (``--base``, default the
  merge base with ``main``), exported by ``git archive`` into a scratch
  folder and imported from there, for the demo's login number (no cap);
- ``uncapped``: this code, the same number: what every holder without a cap pays;
- ``capped``: this code, a holder with a cap of 99 texts a day, so every
  answer is counted (the conditional upsert and the log row in one
  transaction, checks/tally.py) and none is refused: each request asks about
  another day;
- ``previous`` (with ``--previous REV``): the same capped holder, answered by
  the code of ``REV`` (exported like ``before``): an earlier design of the
  counted path, measured in the same run as this one.

Wall clock: the three drivers run in interleaved rounds in one run (a
process each, timed inside after a warm-up), best round reported, because
this machine is shared. Instructions: callgrind, the difference of a run
with ``--requests`` more requests and one with none, divided by that number
(as benchmarks/instructions.py does); on PostgreSQL only the client process
is counted.

Run: ``.venv/bin/python benchmarks/frequency_cap.py [--only sqlite|postgres] [--no-callgrind]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ROOT, demo_registry, drop_postgres, fresh_postgres, machine

UNCAPPED = "+8613100000001"  # the demo's login number: acme-cards holds its consent
CAPPED = "+8613100000009"  # a demo holder with an acme-cards consent, given a cap here
# Requests before the timed ones (copies, compiled statements, caches warm); --warmup.
WARMUP = int(os.environ.get("FREQUENCY_CAP_WARMUP", "200"))
KINDS = ["before", "uncapped", "capped"]


def _body(phone: str, i: int) -> bytes:
    day = datetime(2030, 1, 1, 12, tzinfo=UTC) + timedelta(days=i % 3000)
    return json.dumps(
        {"phone": phone, "sender": "acme-cards", "channel": "sms", "at": day.isoformat()}
    ).encode()


def drive(phone: str, requests: int, key: str) -> float:
    """Call ``POST /api/v1/check`` ``WARMUP + requests`` times; return µs per timed request."""
    from registry import create_app

    app = create_app()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    bodies = [_body(phone, i) for i in range(WARMUP + requests)]
    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/check", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {key}", "CONTENT_TYPE": "application/json",
    }  # fmt: skip
    started = 0.0
    for i, body in enumerate(bodies):
        if i == WARMUP:
            started = time.perf_counter()
        environ = dict(base, CONTENT_LENGTH=str(len(body)))
        environ["wsgi.input"] = io.BytesIO(body)
        for _chunk in app(environ, start_response):
            pass
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{len(bad)} answers were not 200, e.g. {bad[0]}")
    return elapsed / max(requests, 1) * 1e6


def _command(kind: str, requests: int, key: str) -> list[str]:
    phone = CAPPED if kind in ("capped", "previous") else UNCAPPED
    return [sys.executable, __file__, "--drive", phone, str(requests), key]


def _env(env: dict[str, str], kind: str, base_tree: Path) -> dict[str, str]:
    out = {**env, "PYTHONHASHSEED": "0", "FREQUENCY_CAP_WARMUP": os.environ["FREQUENCY_CAP_WARMUP"]}
    tree = base_tree / ("this" if kind in ("uncapped", "capped") else kind)
    if tree.exists():  # an exported package first on the path: it shadows the working tree
        out["PYTHONPATH"] = str(tree)
    return out


def wall_clock(
    env: dict[str, str], key: str, base_tree: Path, rounds: int, n: int
) -> dict[str, float]:
    best = dict.fromkeys(KINDS, float("inf"))
    for _ in range(rounds):
        for kind in KINDS:
            out = subprocess.run(
                _command(kind, n, key), env=_env(env, kind, base_tree),
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            best[kind] = min(best[kind], float(out.stdout.strip().splitlines()[-1]))
    return best


def instructions(env: dict[str, str], kind: str, n: int, key: str, base_tree: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             *_command(kind, n, key)],
            env=_env(env, kind, base_tree), capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise RuntimeError(out.stderr[-2000:])
    return int(found.group(1))


def _give_cap(env: dict[str, str]) -> None:
    """Give CAPPED a cap of 99 texts a day (never reached: every request asks about another day)."""
    code = (
        "from registry import create_app\n"
        "from registry.extensions import db\n"
        "from registry.subscribers import services\n"
        "app = create_app()\n"
        "with app.app_context(), db.session() as s:\n"
        f"    services.set_frequency_caps(s, {CAPPED!r}, {{'sms': (99, None)}})\n"
        "    s.commit()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def measure(label: str, url: str, base_tree: Path, args: argparse.Namespace) -> None:
    env, key, _ = demo_registry(url, 0)
    _give_cap(env)
    if args.rounds:
        clock = wall_clock(env, key, base_tree, args.rounds, args.timed)
        print(
            f"\n{label}: wall clock, best of {args.rounds} interleaved rounds of {args.timed} checks"
        )
        for kind in KINDS:
            print(
                f"  {kind:9} {clock[kind]:8.0f} µs per check   {clock[kind] / clock['before']:5.3f}x before"
            )
    if args.no_callgrind:
        return
    n = args.requests
    counts = {
        kind: (
            instructions(env, kind, n, key, base_tree) - instructions(env, kind, 0, key, base_tree)
        )
        / n
        for kind in KINDS
    }
    print(f"{label}: instructions per check under callgrind ({n} requests per figure)")
    ref = "before" if "before" in counts else KINDS[-1]
    for kind in KINDS:
        print(
            f"  {kind:9} {counts[kind] / 1000:8,.0f} k            {counts[kind] / counts[ref]:5.3f}x {ref}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--base", default=None, help="the commit to compare with")
    parser.add_argument("--previous", default=None, help="an earlier commit's counted path too")
    parser.add_argument(
        "--this", default=None, help="measure this commit's code, not the working tree's"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timed", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed requests first")
    parser.add_argument("--kinds", default=None, help="a comma-separated subset of the drivers")
    parser.add_argument("--drive", nargs=3, metavar=("PHONE", "N", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        print(f"{drive(args.drive[0], int(args.drive[1]), args.drive[2]):.1f}")
        return
    base = (
        args.base
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    print(f"frequency cap, before = {base[:10]}; {machine()}")
    os.environ["FREQUENCY_CAP_WARMUP"] = str(args.warmup)  # the drivers' processes inherit it
    if args.previous:
        KINDS.append("previous")
    if args.kinds:
        KINDS[:] = [k for k in KINDS if k in args.kinds.split(",")]
        print(f"previous = {args.previous}")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        for kind, rev in (("before", base), ("previous", args.previous), ("this", args.this)):
            if rev is None:
                continue
            archive = subprocess.run(
                ["git", "archive", rev, "registry"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            (tree / kind).mkdir()
            subprocess.run(["tar", "-x", "-C", str(tree / kind)], input=archive, check=True)
        if args.only != "postgres":
            measure("SQLite", f"sqlite:///{tmp}/bench.sqlite3", tree, args)
        if args.only != "sqlite":
            url = fresh_postgres("bench_frequency_cap")
            try:
                measure("PostgreSQL", url, tree, args)
            finally:
                drop_postgres("bench_frequency_cap")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
