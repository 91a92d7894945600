"""What asking Anning adds to an INVITE: SIPp through Kamailio with and without the lookup.

    PYTHONPATH=. .venv/bin/python benchmarks/sip_latency.py [calls per round] [rounds] [rate]

One run, everything on 127.0.0.1: the registry (``registry serve``, 2 gunicorn
workers, a fresh SQLite file) holding voice consents for the numbers called;
SIPp's UAS answering 200 OK; two Kamailios running the shipped
integrations/kamailio/anning.cfg, one as shipped (every INVITE asks
/api/v1/check.txt) and one with ``-A WITHOUT_ANNING=1`` (relays without
asking); a SIPp caller whose message trace times each call from its INVITE
to the final response (microseconds; SIPp's own response-time counters
tick in steps of 4 ms here, too coarse). Rounds alternate between the two proxies
(the machine is shared); the figures pool the rounds. Every call must be
answered 200 (allowed and relayed) or the run fails.
"""

from __future__ import annotations

import collections
import http.client
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # benchmarks/_common.py
import requests

from tests.integrations import sip
from tests.serving.server import free_port, serving


def consent_all(base: str, key: str, numbers: list[str]) -> None:
    """Record an active voice consent of bench-cards for each number (POST /consents/bulk)."""
    captured = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for start in range(0, len(numbers), 1000):
        items = [
            {"phone": n, "sender": "bench-cards", "channels": ["voice"],
             "evidence": {"method": "web_form", "captured_at": captured}}
            for n in numbers[start:start + 1000]
        ]  # fmt: skip
        resp = requests.post(
            f"{base}/api/v1/consents/bulk", json={"consents": items},
            headers={"Authorization": f"Bearer {key}"}, timeout=60,
        )  # fmt: skip
        resp.raise_for_status()
        results = resp.json()["results"]
        assert all(r.get("consent", {}).get("status") == "active" for r in results), results[:3]


def direct_ms(port: int, key: str, numbers: list[str]) -> list[float]:
    """Return the milliseconds of GET /check.txt from Python, a new connection each (as Kamailio)."""
    out = []
    for n in numbers:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/api/v1/check.txt?phone={n.replace('+', '%2B')}&sender=bench-cards"
                     "&channel=voice", headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        body = conn.getresponse().read()
        conn.close()
        out.append((time.perf_counter() - started) * 1000)
        assert body == b"ALLOW consent\n", body
        time.sleep(1 / 50)
    return out


def percentile(values: list[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) by the nearest rank."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q / 100 * len(ranked)) - 1))]


def main() -> None:
    """Measure both proxies, alternating rounds, and print p50/p99 and the added time."""
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    if (why := sip.missing()) is not None:
        sys.exit(why)
    tmp = Path(tempfile.mkdtemp(prefix="sip-latency-"))
    env, key = _common.prepare(f"sqlite:///{tmp / 'registry.sqlite3'}", (sip.CALLING,))
    # The trunk's calling number, connected (so attested) by a carrier: Kamailio sends it
    # as the check's ``from``, and an unattested one is denied unregistered_caller.
    _common.registry(env, "org", "create", "bench-telecom", "--name", "Bench Telecom",
                     "--role", "carrier")  # fmt: skip
    _common.registry(env, "connections", "add", "bench-telecom", "bench", "--kind", "trunk",
                     "--address", sip.CALLING)  # fmt: skip
    env.update(REGISTRY_CALLING_HOURS="00:00-23:59", REGISTRY_REQUIRE_CONFIRMATION="false",
               REGISTRY_INSTANCE_PATH=str(tmp / "instance"))  # fmt: skip
    numbers = [f"+86139{n:08d}" for n in range(calls)]
    port = free_port()
    argv = [str(_common.BIN / "registry"), "serve", "--port", str(port), "--workers", "2",
            "--no-access-log"]  # fmt: skip
    with serving(argv, env, port, wait=180) as server:  # a shared machine may start it slowly
        consent_all(server.base, key, numbers)
        results: dict[str, list[float]] = {"without": [], "with": [], "direct": []}
        others = {"without": 0, "with": 0}
        with (
            sip.answerer(tmp, trace_messages=False) as callee,
            sip.kamailio(tmp, server.base, key, "bench-cards", WITHOUT_ANNING="1") as plain,
            sip.kamailio(tmp, server.base, key, "bench-cards") as asking,
        ):
            proxies = {"without": plain, "with": asking}
            for label, proxy in proxies.items():  # warm up: connections, caches, both paths
                warm = sip.call(tmp, proxy, callee, "", 200, numbers=numbers[:50], calls=50,
                                rate=rate)  # fmt: skip
                if warm.answers().count("SIP/2.0 200 OK") != 50:  # a cold worker may be slow
                    print(
                        f"warm-up {label}: {collections.Counter(warm.answers())}", file=sys.stderr
                    )
            for _ in range(rounds):
                for label, proxy in proxies.items():
                    run = sip.call(tmp, proxy, callee, "", 200, numbers=numbers, calls=calls,
                                   rate=rate, timeout=calls / rate + 30)  # fmt: skip
                    # Every INVITE answered (SIPp's own exit status also counts a late
                    # retransmitted 200 to a BYE, which says nothing about the proxy); a
                    # lookup slower than ANNING_TIMEOUT (1 s here) is a 503, counted.
                    answers = run.answers()
                    assert len(answers) == calls, (label, len(answers), calls, run.stderr[-1500:])
                    others[label] += calls - answers.count("SIP/2.0 200 OK")
                    got = run.invite_times()
                    assert len(got) == calls, (label, len(got), run.rtt)
                    results[label] += got
                    time.sleep(0.5)
                results["direct"] += direct_ms(server.port, key, numbers[: calls // 2])
    print(f"SIP INVITE to final response through Kamailio, {rounds} rounds x {calls} calls "
          f"per proxy at {rate} calls/s; {_common.machine()}")  # fmt: skip
    figures = {}
    for label in ("without", "with"):
        got = results[label]
        p50, p99 = percentile(got, 50), percentile(got, 99)
        figures[label] = (p50, p99)
        print(f"  {label:7} the Anning lookup: p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
              f"mean {statistics.fmean(got):.3f} ms  ({len(got)} calls, {others[label]} not 200)")  # fmt: skip
    got = results["direct"]
    print(f"  the check alone (GET /check.txt from Python, a connection each): "
          f"p50 {percentile(got, 50):.3f} ms  p99 {percentile(got, 99):.3f} ms  ({len(got)} checks)")  # fmt: skip
    (b50, b99), (a50, a99) = figures["without"], figures["with"]
    print(f"  added per INVITE: p50 +{a50 - b50:.3f} ms  p99 +{a99 - b99:.3f} ms; "
          f"ratio with/without: p50 {a50 / b50:.2f}x  p99 {a99 / b99:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
