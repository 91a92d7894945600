"""Kill the primary under opt-out load; count acknowledged opt-outs lost and seconds without writes.

Starts a primary and two streaming standbys (tests/replication/cluster.py, their
own processes on free ports of 127.0.0.1), points the registry at all three
with the multi-host URL pg_auto_failover prints
(``postgresql://h1:p1,h2:p2,h3:p3/db?target_session_attrs=read-write``), and
posts opt-outs for distinct numbers from a few client threads. After a while
it SIGKILLs every process of the primary, promotes the standby that received
the most WAL (``pg_ctl promote``: the manual failover; pg_auto_failover's
monitor does the same after its health checks fail), and keeps posting. Then
it reads ``opt_out`` on the new primary and counts the acknowledged (201)
opt-outs that are not there.

``--mode sync`` (the production setting, docs/scaling.md): the primary has
``synchronous_standby_names = 'ANY 1 (s1, s2)'``, so a commit is acknowledged
once a standby has flushed it; ``--mode async``: none. Downtime is the time
from the kill to the first acknowledged opt-out asked after it; the promotion here starts at once, so a real failover adds its
detection time (pg_auto_failover: 20-55 s with its defaults, issue 20).

    .venv/bin/python benchmarks/failover.py [--mode sync|async|both] [--before 3] [--after 6] [--clients 3]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from registry import migrate
from registry.extensions import db
from tests import factories
from tests.conftest import make_app
from tests.replication.cluster import cluster


def run(mode: str, before: float, after: float, clients: int) -> dict[str, Any]:
    """Run one failover under load; return its figures."""
    with cluster(standbys=2, sync="ANY 1" if mode == "sync" else None) as c:
        migrate.upgrade(c.url(c.primary_port))
        hosts = ",".join(f"127.0.0.1:{p}" for p in c.ports)
        url = f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
        app = make_app(
            url,
            Path(tempfile.mkdtemp(prefix="anning-failover-")),
            REGISTRY_RATELIMIT_WRITE="10000000 per minute",
            REGISTRY_DATABASE_CONNECT_TIMEOUT="2",
        )
        with app.app_context(), db.session() as s:
            key = factories.world(s).keys["acme"]
        acked: list[tuple[float, str]] = []
        failed: list[float] = []
        stop = threading.Event()

        def client(n: int) -> None:
            http = app.test_client()
            auth = {"Authorization": f"Bearer {key}"}
            i = 0
            while not stop.is_set():
                i += 1
                phone = f"+86131{n:02d}{i:06d}"
                body = {
                    "phone": phone,
                    "sender": "acme-cards",
                    "channels": ["sms"],
                    "source": "call",
                }
                started = time.monotonic()
                try:
                    resp = http.post("/api/v1/optouts", json=body, headers=auth)
                    ok = resp.status_code == 201
                except Exception:  # the primary died under the request
                    ok = False
                if ok:
                    acked.append((started, phone))
                else:
                    failed.append(time.monotonic())
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        time.sleep(before)
        c.kill_primary()
        killed = time.monotonic()  # every process of the primary is gone from here on
        best, received = c.promote_most_advanced()
        promoted = time.monotonic()
        time.sleep(after)
        stop.set()
        for t in threads:
            t.join()
        with app.app_context():
            db.dispose()
        present = {r[0] for r in c.sql(c.ports[best], "SELECT phone FROM opt_out")}
        lost = [p for _, p in acked if p not in present]
        before_kill = [t for t, _ in acked if t < killed]
        after_kill = [t for t, _ in acked if t >= killed]
        # From the kill to the first acknowledged opt-out asked after it.
        down = (min(after_kill) - killed) if before_kill and after_kill else float("nan")
        return {
            "mode": mode,
            "acknowledged": len(acked),
            "lost": len(lost),
            "failed_requests": len(failed),
            "downtime_s": down,
            "promotion_s": promoted - killed,
            "received_lsn_gap": abs(received[1] - received[2]),
        }


def main() -> None:
    logging.disable(logging.CRITICAL)  # the app logs every failed request while the primary is gone
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["sync", "async", "both"], default="both")
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    modes = ["sync", "async"] if args.mode == "both" else [args.mode]
    for mode in modes:
        r = run(mode, args.before, args.after, args.clients)
        print(
            f"failover ({r['mode']}): {r['acknowledged']} opt-outs acknowledged, "
            f"{r['lost']} lost; {r['downtime_s']:.2f} s without an acknowledged write "
            f"(the promotion, started at once, done {r['promotion_s']:.2f} s after the kill); "
            f"{r['failed_requests']} requests failed meanwhile"
        )


if __name__ == "__main__":
    main()
