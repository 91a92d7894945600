"""What naming the feed number in a receipt costs a single check (``check_one``), in-process.

    PYTHONPATH=. .venv/bin/python benchmarks/receipt_seq.py sqlite:////tmp/receipt.sqlite3
    PYTHONPATH=. .venv/bin/python benchmarks/receipt_seq.py \
        postgresql+psycopg://postgres@127.0.0.1:5432/bench_receipt

Fills 20,000 opt-outs, then times ``check_one`` with the cached feed number
(``known_seq``) against a stub returning 0 — best of 30 interleaved runs of
300 checks, because this machine is shared — and the bare ``max(seq)`` query
that reading the number on every check would cost.
"""

from __future__ import annotations

import sys
import time

from registry import create_app, migrate
from registry.checks import services
from registry.consent import optouts
from registry.db import CheckSessions
from registry.events import sealing
from registry.events.services import Actor
from registry.extensions import db
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.timeutil import utcnow
from tests import factories


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_receipt WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_receipt")
    migrate.upgrade(url)
    app = create_app({"ENVIRON": {"REGISTRY_DATABASE_URL": url, "REGISTRY_SECRET_KEY": "x"}})
    with app.app_context(), db.session() as s:
        w = factories.world(s)
        caller = Caller(w.org_ids["acme"], "acme", "Acme", "sender", None)
        sender = resolve_sender(s, caller, "acme-cards", "check", utcnow())
        actor = Actor("org:acme", "api", org_id=w.org_ids["acme"])
        for i in range(20_000):
            phone = f"+86139{i:08d}"
            optouts.record_optout(s, actor, sender, phone, ["sms"], "app", None, None)
        s.commit()
        sealing.seal(s)
        s.commit()
        req = services.CheckRequest(sender, "sms", "marketing", "finance", utcnow())
        settings = app.config["REGISTRY"]

        def run(n: int = 300) -> float:
            t = time.perf_counter()
            for i in range(n):
                services.check_one(CheckSessions.on(s), settings, req, f"+86139{i:08d}")
            s.rollback()
            return (time.perf_counter() - t) / n * 1e6

        real = services.known_seq
        with_seq, without = [], []
        for _ in range(30):
            services.known_seq = real
            with_seq.append(run())
            services.known_seq = lambda _session: 0
            without.append(run())
        services.known_seq = real
        query = per_call(lambda: sealing.last_seq(s), 5000)
        cached = per_call(lambda: sealing.known_seq(s), 20000)
    print(
        f"{url.split(':')[0]}: check_one best of 30x300: {min(with_seq):.0f} µs with the receipt's "
        f"feed number, {min(without):.0f} µs without; known_seq {cached:.1f} µs; "
        f"a max(seq) query per check would add {query:.0f} µs"
    )


if __name__ == "__main__":
    main(sys.argv[1])
