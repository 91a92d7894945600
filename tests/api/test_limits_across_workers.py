"""Each limit holds with 4 gunicorn workers as with 1 (issue 13).

Real gunicorn on a free port of 127.0.0.1, started on the app factory with a
temporary instance folder and nothing said about the rate-limit storage: the
default, a file in the instance folder that every worker counts in
(registry/ratelimit.py). Requests come from several threads at once; each
limit (per key, per organization's cold checks, per number on the site, per
client on the console) must let exactly its budget through, however the
requests fall on the workers. (With the per-process ``memory://`` store, 4 workers let up to 4
times the budget through.)
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask

from tests.api.test_rate_limits import make_world
from tests.conftest import NOON, TEST_ENV
from tests.factories import HOLDER

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[2]
THREADS = 8
KEY_LIMIT, COLD_LIMIT, CODE_LIMIT, STAFF_LIMIT = 30, 25, 5, 7
BATCH = 5  # cold numbers in each batch: a batch costs 5 of the cold-check budget


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, instance: Path, workers: int) -> Iterator[int]:
    """Serve ``create_app`` with ``workers`` gunicorn workers; yield the port."""
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        TEST_ENV,
        REGISTRY_DATABASE_URL=database_url,
        REGISTRY_RATELIMIT_CHECK=f"{KEY_LIMIT} per day",
        REGISTRY_RATELIMIT_COLD_CHECK=f"{COLD_LIMIT} per day",
        REGISTRY_RATELIMIT_LOGIN_NUMBER=f"{CODE_LIMIT} per day",
        REGISTRY_RATELIMIT_STAFF_LOGIN=f"{STAFF_LIMIT} per day",
    )
    config = {"INSTANCE_PATH": str(instance)}
    factory = f"registry:create_app({config!r})"
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers),
           "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), factory]  # fmt: skip
    log = instance.parent / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                try:
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                finally:
                    conn.close()
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def api(port: int, key: str, path: str, payload: object) -> int:
    """POST JSON to the API with ``key``; return the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        conn.request("POST", f"/api/v1{path}", json.dumps(payload), headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def submit(port: int, path: str, fields: dict[str, str]) -> int:
    """Open the form on ``path`` and send it, as a browser of its own would; return the status."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    url = f"http://127.0.0.1:{port}{path}"
    with opener.open(url, timeout=30) as resp:
        page = resp.read().decode()
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, page[:300]
    form = urllib.parse.urlencode({**fields, "csrf_token": match.group(1)}).encode()
    try:
        with opener.open(url, form, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:  # a 302 (not followed), 401, 429
        exc.close()
        return exc.code


def at_once(n: int, call: Callable[[int], int]) -> Counter[int]:
    """Make ``n`` calls from THREADS threads at once; count the statuses."""
    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(pool.map(call, range(n)))


@pytest.mark.parametrize("workers", [1, 4])
def test_every_limit_lets_exactly_its_budget_through(
    app: Flask, tmp_path: Path, workers: int
) -> None:
    world = make_world()
    acme, shop = world.keys["acme"], world.keys["shop"]
    with gunicorn(app.config["REGISTRY"].database_url, tmp_path / "instance", workers) as port:
        # Per key: checks on a number acme's sender has an opt-out with (not cold).
        optout = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
        assert api(port, acme, "/optouts", optout) == 201
        check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms", "at": NOON}
        got = at_once(50, lambda _: api(port, acme, "/check", check))
        assert got == {200: KEY_LIMIT, 429: 50 - KEY_LIMIT}

        # Per organization, checks on numbers it has no record with: 10 batches of 5
        # (10 of shop's key budget), 25 numbers of cold-check budget.
        def cold_batch(i: int) -> int:
            phones = [f"+8613900{i:03d}{j:03d}" for j in range(BATCH)]
            batch = {"sender": "shop-deals", "channel": "sms", "phones": phones, "at": NOON}
            return api(port, shop, "/check/batch", batch)

        got = at_once(10, cold_batch)
        assert got == {200: COLD_LIMIT // BATCH, 429: 10 - COLD_LIMIT // BATCH}

        # Per number, on the site: sign-in codes texted to one number.
        got = at_once(20, lambda _: submit(port, "/sign-in", {"phone": HOLDER}))
        assert got == {302: CODE_LIMIT, 429: 20 - CODE_LIMIT}

        # Per client, on the console: sign-in attempts (unknown accounts: no lock-out).
        def staff_login(i: int) -> int:
            form = {"email": f"nobody{i}@regulator.example", "password": "wrong", "code": "000000"}
            return submit(port, "/admin/login", form)

        got = at_once(20, staff_login)
        assert got == {401: STAFF_LIMIT, 429: 20 - STAFF_LIMIT}
        # The counts are in the instance folder, not in a worker.
        assert (tmp_path / "instance" / "ratelimits.sqlite3").exists()
