"""The frequency cap is exact under parallel checks: 20 at once never allow more than N.

Against a live multi-threaded server (one process, many threads), and against
real gunicorn with 4 worker processes; on SQLite and on PostgreSQL, whichever
the suite runs on. Single checks and batches race for the same last slots
(checks/tally.py explains why they cannot both win).
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select

from registry.checks.models import CheckLog, ContactTally
from registry.extensions import db
from registry.subscribers import services as subscribers
from tests import factories
from tests.api.test_check import give_consent
from tests.api.test_limits_across_workers import gunicorn
from tests.conftest import NOON
from tests.factories import HOLDER

pytestmark = pytest.mark.live
PARALLEL = 20
CAP = 5


def _arrange() -> str:
    """Give HOLDER a consent for acme-cards and a cap of CAP texts a day; return acme's key."""
    with db.session() as s:
        world = factories.world(s)
        give_consent(s, world)
        subscribers.set_frequency_caps(s, HOLDER, {"sms": (CAP, None)})
        s.commit()
    return world.keys["acme"]


def _post(host: str, port: int, key: str, path: str, payload: object) -> dict:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        conn.request("POST", f"/api/v1{path}", json.dumps(payload), headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        return body  # type: ignore[no-any-return]
    finally:
        conn.close()


def _race(host: str, port: int, key: str) -> Counter[str]:
    """Send 20 checks at once (every fourth a batch of one); count the answers' reasons."""
    check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms", "at": NOON}
    batch = {"sender": "acme-cards", "channel": "sms", "at": NOON, "phones": [HOLDER]}

    def one(i: int) -> str:
        if i % 4 == 3:
            return str(_post(host, port, key, "/check/batch", batch)["results"][0]["reason"])
        return str(_post(host, port, key, "/check", check)["reason"])

    with ThreadPoolExecutor(PARALLEL) as pool:
        return Counter(pool.map(one, range(PARALLEL)))


def _assert_exact(reasons: Counter[str]) -> None:
    assert reasons == {"consent": CAP, "frequency_capped": PARALLEL - CAP}, reasons
    with db.session() as s:
        # What the log says and what the counter says agree with the answers.
        allowed = s.scalar(
            select(func.count()).select_from(CheckLog).where(CheckLog.decision == "allow")
        )
        assert allowed == CAP
        assert s.scalar(select(ContactTally.total)) == CAP


def test_twenty_threads_never_allow_more_than_the_cap(app: Flask, live_server: str) -> None:
    key = _arrange()
    url = urlsplit(live_server)
    _assert_exact(_race(url.hostname or "", url.port or 0, key))


def test_four_worker_processes_never_allow_more_than_the_cap(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    key = _arrange()
    with gunicorn(database_url, tmp_path / "instance", 4) as port:
        _assert_exact(_race("127.0.0.1", port, key))
