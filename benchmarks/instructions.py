"""Instructions per request under callgrind: a warm check against a bare Flask JSON endpoint.

Seconds on a shared, noisy machine wander; instruction counts do not. valgrind's
callgrind counts every instruction the Python process runs, the same figure
however busy the other cores are. Each figure below is the difference of two
runs of one driver, one making ``--requests`` more requests than the other,
divided by that number: start-up, imports and warm-up cancel out.

Three drivers call a WSGI app directly with a prebuilt environ (no client, no
socket: what is counted is the app's own work):

- ``bare``: a Flask app with one JSON endpoint, nothing else (the floor of any
  Flask request);
- ``trivial``: the registry's own ``GET /healthz`` (its hooks, limiter, metrics);
- ``check``: the registry's ``POST /api/v1/check`` for the demo holder and
  sender (a consent on record), its log row committed before the answer;
- ``check_from``: the same check naming its calling address (``from``, an
  attested port of the sender; benchmarks/caller.py compares the two).

On PostgreSQL only the client process is counted (the server's work is its
own process); the ratio is still the one the issue asks for.

Run: ``.venv/bin/python benchmarks/instructions.py [--only sqlite|postgres]``
(needs ``valgrind``; a few minutes, most of it Python's start-up under valgrind).

``--base REV`` measures an earlier commit's code instead: the whole tree of
``REV`` (its package and its migrations) is exported by ``git archive`` into a
scratch directory and put first on ``PYTHONPATH`` for the registry's commands
and the drivers, as benchmarks/frequency_cap.py does for its ``before``; run
the script twice, with and without ``--base``, for a before/after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, demo_registry, drop_postgres, fresh_postgres, machine

PHONE = "+8613100000001"  # the demo's login number; acme-cards holds its consent
BODY = json.dumps(
    {"phone": PHONE, "sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}
).encode()
# The same check naming its calling address (issue 15): the demo carrier attests acme-cards' port.
BODY_FROM = json.dumps(
    {"phone": PHONE, "sender": "acme-cards", "channel": "sms", "at": "2030-01-15T12:00:00+08:00",
     "from": "10690001"}
).encode()  # fmt: skip
WARMUP = 200


def _environ(method: str, path: str, key: str | None, body: bytes = b"") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
        "HTTP_HOST": "127.0.0.1:8000",
    }  # fmt: skip
    if key:
        env["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    env["_body"] = body
    return env


def drive(kind: str, requests: int, key: str) -> None:
    """Build the app for ``kind`` and call it ``WARMUP + requests`` times."""
    if kind == "bare":
        from flask import Flask

        app = Flask("bare")

        @app.get("/ping")
        def ping() -> Any:
            return {"status": "ok"}

        template = _environ("GET", "/ping", None)
    else:
        from registry import create_app

        app = create_app()
        template = {
            "trivial": lambda: _environ("GET", "/healthz", None),
            "check": lambda: _environ("POST", "/api/v1/check", key, BODY),
            "check_from": lambda: _environ("POST", "/api/v1/check", key, BODY_FROM),
        }[kind]()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = template.pop("_body")

    def call() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body)
        for _chunk in app(environ, start_response):
            pass

    for _ in range(WARMUP):
        call()
    steady(registry_app=kind != "bare")
    for _ in range(requests):
        call()
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{kind}: {len(bad)} answers were not 200, e.g. {bad[0]}")


def steady(registry_app: bool) -> None:
    """Make the counted requests cost what they cost at full speed, whichever run they are in.

    Under valgrind a request takes some 50 times longer, so what the registry
    does once per interval would run on nearly every request: the feed number
    a receipt names (read at most every 50 ms, about once in 50 checks at full
    speed) and the rate-limit file's sweep of expired rows (once a minute).
    Both are set to outlast the run. And the heap of start-up and warm-up is
    frozen (``gc.freeze``): a full collection walks it at a moment that
    depends on the run's length, so it fell into one run of a pair and not
    the other (tens of millions of instructions either way).
    """
    import gc

    if registry_app:
        from registry import ratelimit
        from registry.events import sealing
        from registry.extensions import limiter

        sealing.KNOWN_TTL = 3600.0
        storage = limiter.limiter.storage
        if isinstance(storage, ratelimit.SQLiteStorage):
            storage._next_sweep = float("inf")  # the next sweep: after the run
    gc.collect()
    gc.freeze()


def instructions(env: dict[str, str], kind: str, requests: int, key: str) -> int:
    """Run the driver under callgrind; return the instructions it executed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--drive", kind, str(requests), key],
            env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise RuntimeError(out.stderr[-2000:])
    return int(found.group(1))


def per_request(env: dict[str, str], kind: str, requests: int, key: str) -> float:
    return (instructions(env, kind, requests, key) - instructions(env, kind, 0, key)) / requests


def measure(label: str, url: str, requests: int, kinds: list[str]) -> dict[str, float]:
    env, key, _ = demo_registry(url, 0)
    figures = {kind: per_request(env, kind, requests, key) for kind in kinds}
    print(f"\n{label} ({requests} requests per figure)")
    for kind, value in figures.items():
        print(f"  {kind:8} {value / 1000:10,.0f} k instructions per request")
    for top, under, name in (
        ("check", "bare", "check / bare Flask endpoint:       "),
        ("check", "trivial", "check / registry trivial endpoint: "),
        ("trivial", "bare", "trivial / bare Flask endpoint:     "),
    ):
        if top in figures and under in figures:
            print(f"  {name} {figures[top] / figures[under]:5.2f}x")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--kinds",
        default="bare,trivial,check",
        help="a comma-separated subset of bare,trivial,check,check_from (bare runs no registry "
        "code: the same figure for any commit and database)",
    )
    parser.add_argument("--base", default=None, help="measure this commit's code (git archive)")
    parser.add_argument("--drive", nargs=3, metavar=("KIND", "N", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive[0], int(args.drive[1]), args.drive[2])
        return
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind (Debian package valgrind)")
    print(f"instructions per request under callgrind; {machine()}")
    with tempfile.TemporaryDirectory() as tree:
        if args.base:
            export(args.base, Path(tree))
        run(args)


def export(rev: str, tree: Path) -> None:
    """Export ``rev``'s tree into ``tree``, first on the path of every process started after."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    os.environ["PYTHONPATH"] = str(tree)  # bench_env copies os.environ: the CLI and the drivers
    print(f"code measured: {rev} (exported)")


def run(args: argparse.Namespace) -> None:
    kinds = args.kinds.split(",")
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            measure("SQLite", f"sqlite:///{tmp}/bench.sqlite3", args.requests, kinds)
    if args.only != "sqlite":
        url = fresh_postgres("bench_instructions")
        try:
            measure("PostgreSQL", url, args.requests, kinds)
        finally:
            drop_postgres("bench_instructions")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
