"""A check naming its calling address (``from``) against the same check without it (issue 15).

The issue asks for the check with ``from`` within 10% of the check without it.
Both run side by side in one process on one demo registry: the demo holder and
sender (a consent on record), the same number, the same answer (``allow
consent``); the only difference is ``"from": "10690001"``, the sender's port,
attested by the demo carrier. The address is one more branch of the facts
query (registry/checks/facts.py), so the request count of statements is the
same; what it costs is parsing the address, the branch, and a longer log row.

Two measures:

- wall time: rounds of ``--requests`` calls of each, alternated (so drift
  from other work on the machine hits both), the median per round;
- instructions under callgrind (``--instructions``), as benchmarks/instructions.py
  counts them: repeatable on a busy machine.

Run: ``.venv/bin/python benchmarks/caller.py [--only sqlite|postgres] [--instructions]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from _common import demo_registry, drop_postgres, fresh_postgres, machine
from instructions import BODY, BODY_FROM, _environ, per_request


def _time_rounds(env: dict[str, str], key: str, rounds: int, requests: int) -> dict[str, float]:
    """Return the median seconds per request of each kind, alternating rounds."""
    os.environ.update(env)
    from registry import create_app

    app = create_app()
    bodies = {"check": BODY, "check_from": BODY_FROM}
    templates = {k: _environ("POST", "/api/v1/check", key, b) for k, b in bodies.items()}
    for t in templates.values():
        t.pop("_body")
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    def run(kind: str, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            environ = dict(templates[kind])
            environ["wsgi.input"] = io.BytesIO(bodies[kind])
            out = b"".join(app(environ, start_response))
        elapsed = time.perf_counter() - started
        answer = json.loads(out)
        if (answer["decision"], answer["reason"]) != ("allow", "consent"):
            raise SystemExit(f"{kind}: unexpected answer {answer}")
        return elapsed / n

    for kind in bodies:
        run(kind, 200)  # warm: copies, statement caches, zones
    per_round: dict[str, list[float]] = {k: [] for k in bodies}
    for i in range(rounds):
        order = list(bodies) if i % 2 == 0 else list(reversed(bodies))
        for kind in order:
            per_round[kind].append(run(kind, requests))
    if any(not s.startswith("200") for s in seen):
        raise SystemExit("an answer was not 200")
    return {k: statistics.median(v) for k, v in per_round.items()}


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    env, key, _ = demo_registry(url, 0)
    print(f"\n{label}")
    if args.instructions:
        counts = {k: per_request(env, k, args.requests, key) for k in ("check", "check_from")}
        for kind, value in counts.items():
            print(f"  {kind:11} {value / 1000:10,.0f} k instructions per request (callgrind)")
        print(f"  with from / without:     {counts['check_from'] / counts['check']:6.3f}x")
    times = _time_rounds(env, key, args.rounds, args.requests)
    for kind, seconds in times.items():
        print(f"  {kind:11} {seconds * 1e6:10,.0f} µs per request (median of {args.rounds} rounds)")
    print(f"  with from / without:     {times['check_from'] / times['check']:6.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--instructions", action="store_true", help="also count under callgrind")
    args = parser.parse_args()
    print(f"check with from against without; {machine()}")
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            measure("SQLite", f"sqlite:///{tmp}/bench.sqlite3", args)
    if args.only != "sqlite":
        url = fresh_postgres("bench_caller")
        try:
            measure("PostgreSQL", url, args)
        finally:
            drop_postgres("bench_caller")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
