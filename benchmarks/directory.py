"""Issue 12, section 3, measured again over HTTP: can one organization still mine the registry?

Starts the registry under gunicorn (one worker, so ``memory://`` limits count
exactly) on 127.0.0.1 against a scratch SQLite file, with the production
defaults for every limit but the cold-number budget, which is set to what the
run spends on its watchlist (``--watch``, default 200,000 a day) so the rest of
the run meets it spent. 1,000 of the watched numbers had do-not-disturb set
before the watch. Then, as the issue's attacker did:

1. watch ``--watch`` arbitrary numbers, 10,000 a call, and follow
   ``/changes?after=0``: how many of the numbers' earlier changes come back;
2. ``/sync/compare`` 1,000 strangers' rows: answered, or refused;
3. 1,000 voice-only pending consents, then an SMS batch on those numbers;
4. 30 pending consents to one number: how many confirmation texts are queued;
5. 3,000 ``GET /numbers/<p>/reassigned``: how many are answered.

    .venv/bin/python benchmarks/directory.py [--watch 200000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Server, bench_env, machine, registry

DND = [f"+86136{n:08d}" for n in range(1_000)]


class Client:
    """One keep-alive connection to the registry with a bearer key."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, "/api/v1" + path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None


def set_dnd_before(env: dict[str, str]) -> None:
    """Give the DND numbers a holder's do-not-disturb, through the registry's own service."""
    import os

    os.environ.update(env)
    from registry import create_app
    from registry.extensions import db
    from registry.subscribers import services as subscribers

    app = create_app()
    with app.app_context(), db.session() as session:
        for phone in DND:
            subscribers.set_preferences(session, phone, dnd_sms=True, dnd_voice=True)
        session.commit()
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watch", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'directory.sqlite3'}"
        env = bench_env(url)
        for name in ("READ", "CONSENT_NUMBER"):
            env.pop(f"REGISTRY_RATELIMIT_{name}", None)  # the production defaults
        env["REGISTRY_RATELIMIT_COLD_CHECK"] = f"{args.watch} per day"
        registry(env, "db", "upgrade")
        registry(env, "org", "create", "bench", "--name", "Bench Bank")
        registry(env, "sender", "create", "bench", "bench-cards", "--name", "Bench Cards",
                 "--category", "finance")  # fmt: skip
        key = registry(env, "key", "create", "bench").stdout.strip().splitlines()[-1]
        set_dnd_before(env)
        server = Server(env, workers=1)
        try:
            run(server.port, key, args.watch, Path(tmp) / "directory.sqlite3")
        finally:
            server.stop()


def run(port: int, key: str, watch: int, path: Path) -> None:
    api = Client(port, key)
    print(machine())
    # 1. the watchlist, and the feed from the start
    numbers = DND + [f"+86137{n:08d}" for n in range(watch - len(DND))]
    started = time.perf_counter()
    statuses: dict[int, int] = {}
    charged = 0
    for start in range(0, len(numbers), 10_000):
        status, body = api.call("POST", "/watchlist", {"phones": numbers[start : start + 10_000]})
        statuses[status] = statuses.get(status, 0) + 1
        charged += body.get("charged", 0) if status == 200 else 0
    seconds = time.perf_counter() - started
    print(f"1. watched {watch:,} numbers in {seconds:.1f} s: calls by status {statuses}, "
          f"charged to the cold budget {charged:,}")  # fmt: skip
    after, seen, pages = 0, 0, 0
    while True:
        status, page = api.call("GET", f"/changes?after={after}&limit=1000")
        pages += 1
        if status != 200:
            print(f"   feed: {status} {page}")
            break
        seen += sum(1 for c in page["changes"] if c["type"] == "preferences.changed")
        after = page["next"]
        if not page["has_more"]:
            break
    print(f"   /changes?after=0: {seen} of the {len(DND):,} earlier DND changes ({pages} pages)")
    # 2. compare strangers' rows with the budget spent
    rows = [{"phone": f"+86135{n:08d}", "sender": "bench-cards", "channel": "sms", "state": "allowed"}
            for n in range(1_000)]  # fmt: skip
    status, body = api.call("POST", "/sync/compare", {"rows": rows})
    print(f"2. /sync/compare of 1,000 strangers' rows: {status} "
          f"{body['error']['code'] if status != 200 else ''}")  # fmt: skip
    # 3. voice-only pending consents, then an SMS batch on them
    voice = [f"+86134{n:08d}" for n in range(1_000)]
    evidence = {"method": "web_form", "captured_at": "2026-01-01T00:00:00Z"}
    items = [{"phone": p, "sender": "bench-cards", "channels": ["voice"], "evidence": evidence}
             for p in voice]  # fmt: skip
    status, body = api.call("POST", "/consents/bulk", {"consents": items})
    pending = sum(1 for r in body["results"] if r.get("consent")) if status == 200 else 0
    status, body = api.call("POST", "/check/batch", {"sender": "bench-cards", "channel": "sms", "phones": voice})  # fmt: skip
    print(f"3. {pending:,} voice-only pending consents, then an SMS batch on them: {status} "
          f"{body['error']['code'] if status != 200 else body['summary']}")  # fmt: skip
    # 4. a flood of pending consents to one number
    one = "+8613300000000"
    items = [
        {"phone": one, "sender": "bench-cards", "channels": ["sms"], "evidence": evidence}
    ] * 30
    status, body = api.call("POST", "/consents/bulk", {"consents": items})
    refused = sum(1 for r in body["results"] if r.get("error"))
    with sqlite3.connect(path) as db:
        texts = db.execute("SELECT count(*) FROM sms_message WHERE phone = ?", (one,)).fetchone()[0]
    print(f"4. 30 pending consents to one number: {texts} confirmation texts queued, "
          f"{refused} items refused (rate_limited)")  # fmt: skip
    # 5. reassigned, 3,000 times
    started = time.perf_counter()
    answered: dict[int, int] = {}
    for n in range(3_000):
        status, _ = api.call("GET", f"/numbers/+86132{n:08d}/reassigned?since=2026-01-01")
        answered[status] = answered.get(status, 0) + 1
    seconds = time.perf_counter() - started
    print(f"5. 3,000 GET /numbers/<p>/reassigned in {seconds:.1f} s: by status {answered}")


if __name__ == "__main__":
    main()
