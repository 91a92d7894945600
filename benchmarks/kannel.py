"""Replies per second through Kannel to Anning's gateway endpoint, and what Kannel adds.

Starts ``registry serve`` (gunicorn) on a scratch SQLite database with
``REGISTRY_SMS_BACKEND=kannel``, and Kannel (bearerbox + smsbox, the shipped
``integrations/kannel/kannel.conf`` with its ports replaced, as the tests run
it) with Debian's fake SMSC as the carrier. Then:

1. through Kannel: the fake SMSC sends N replies ``HELP`` to the registry's
   number as fast as it can; smsbox posts each to
   ``/api/v1/gateway/kannel/inbound``; Anning answers each with a text that it
   sends back through Kannel's sendsms. Timed until Anning has recorded N
   answers (replies handled) and until the fake SMSC has received N texts
   (the round trip).
2. directly: the same N posts sent to the same endpoint by 1, then 8 Python
   threads (the form Kannel posts, with the same answer through Kannel's
   sendsms), timed the same way: the ratio says what Kannel's hop costs.

    .venv/bin/python benchmarks/kannel.py [--replies 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, Server, cpu_seconds, free_port, machine, prepare, registry
from sqlalchemy import create_engine, text

sys.path.insert(0, str(ROOT))
from tests.kannel import INSTALLED, SENDSMS_PASSWORD, Kannel, wait_for

PHONE = "+8613100000001"


def answered(url: str, delivered: bool = False) -> int:
    """Return how many answers Anning queued (or, ``delivered``, has the "delivered" report of)."""
    engine = create_engine(url)
    where = " AND delivery = 'delivered'" if delivered else ""
    try:
        with engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM sms_message WHERE kind = 'reply'{where}")
            return int(conn.scalar(sql))
    finally:
        engine.dispose()


def settle(url: str) -> None:
    """Wait until every answer's delivery reports came back (they cost Anning requests too)."""
    wait_for("the delivery reports", lambda: answered(url, True) == answered(url), timeout=600)


def cpu(pids: list[int]) -> float:
    """Return the CPU seconds ``pids`` have used so far, together."""
    return sum(cpu_seconds(pids).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not INSTALLED:
        sys.exit("needs Debian's kannel and kannel-extras (bearerbox, smsbox, fakesmsc)")
    n = args.replies
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'registry.sqlite3'}"
        env, _ = prepare(url)
        registry(env, "org", "create", "sms-gateway", "--name", "Gateway", "--role", "gateway")
        key = registry(env, "key", "create", "sms-gateway").stdout.strip().splitlines()[-1]
        kannel_dir = tmp / "kannel"
        kannel_dir.mkdir()
        # Kannel's configuration needs Anning's port, and Anning Kannel's: reserve Anning's first.
        port = free_port()
        kannel = Kannel(kannel_dir, f"http://127.0.0.1:{port}", key)
        env |= {
            "REGISTRY_SMS_BACKEND": "kannel",
            "REGISTRY_SMS_KANNEL_URL": kannel.sendsms_url,
            "REGISTRY_SMS_KANNEL_USERNAME": "anning",
            "REGISTRY_SMS_KANNEL_PASSWORD": SENDSMS_PASSWORD,
            "REGISTRY_SMS_DLR_BASE_URL": f"http://127.0.0.1:{port}",
            "REGISTRY_RATELIMIT_CONSENT_NUMBER": "100000000 per minute",
        }
        server = Server(env, args.workers, port=port)
        try:
            kannel.start()
            print(f"# {machine()}; {args.workers} gunicorn workers, SQLite; {n} replies")
            anning = server.worker_pids()
            boxes = [p.pid for p in kannel.procs[:2]]  # bearerbox, smsbox
            # 1. Through Kannel.
            anning_cpu, boxes_cpu = cpu(anning), cpu(boxes)
            started = time.perf_counter()
            kannel.send_from_phone(PHONE, "HELP", count=n)
            wait_for("Anning's answers", lambda: answered(url) >= n, timeout=600)
            handled = time.perf_counter() - started
            wait_for("the answers at the phone", lambda: len(kannel.texts_to(PHONE)) >= n,
                     timeout=600)  # fmt: skip
            round_trip = time.perf_counter() - started
            settle(url)
            anning_ms = (cpu(anning) - anning_cpu) * 1000 / n
            boxes_ms = (cpu(boxes) - boxes_cpu) * 1000 / n
            print(f"through Kannel: {n / handled:8.1f} replies/s handled by Anning "
                  f"({handled:.2f} s), {n / round_trip:8.1f}/s answered at the phone "
                  f"({round_trip:.2f} s)")  # fmt: skip
            print(f"CPU per reply: Anning's workers {anning_ms:.1f} ms, "
                  f"bearerbox + smsbox {boxes_ms:.1f} ms (the reply in, the answer out, "
                  f"its two delivery reports back)")  # fmt: skip
            # 2. Directly, as Kannel posts them.
            auth = "Basic " + base64.b64encode(f"kannel:{key}".encode()).decode()
            headers = {"Authorization": auth, "Content-Type": 'text/plain; charset="UTF-8"',
                       "X-Kannel-From": PHONE, "X-Kannel-To": "10690000"}  # fmt: skip

            def post(_: int) -> int:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                try:
                    conn.request("POST", "/api/v1/gateway/kannel/inbound", body=b"HELP",
                                 headers=headers)  # fmt: skip
                    return conn.getresponse().status
                finally:
                    conn.close()

            for threads in (1, 8):
                before, anning_cpu = answered(url), cpu(anning)
                started = time.perf_counter()
                with ThreadPoolExecutor(threads) as pool:
                    statuses = list(pool.map(post, range(n)))
                direct = time.perf_counter() - started
                assert statuses.count(200) == n, {s: statuses.count(s) for s in set(statuses)}
                assert answered(url) - before == n
                settle(url)
                direct_ms = (cpu(anning) - anning_cpu) * 1000 / n
                print(f"directly:       {n / direct:8.1f} replies/s handled by Anning "
                      f"({direct:.2f} s, {threads} client thread{'s' if threads > 1 else ''}); "
                      f"Kannel's hop runs at {direct / handled:.2f}x this rate; "
                      f"Anning's CPU {direct_ms:.1f} ms a reply")  # fmt: skip
        finally:
            kannel.stop()
            server.stop()


if __name__ == "__main__":
    main()
