"""Lock-out counters hold under concurrency: 40 simultaneous wrong answers, at most 5 judged.

Each counter (the site's sign-in code, the consent-request code, the
console's password and TOTP) is attacked by 40 threads at once against a live
server, on SQLite and on PostgreSQL. Every thread comes from its own loopback
address (127.0.0.2, 127.0.0.3, ...), so the per-client rate limits — a
separate defence — do not hide what the counter itself lets through. Then the
right answer is refused too: the counter is locked.
"""

from __future__ import annotations

import http.client
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select

from registry.admin import accounts
from registry.extensions import db
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.sms.models import SmsMessage
from tests import factories
from tests.factories import HOLDER

PARALLEL = 40
MAX_TRIES = 5
CSRF = re.compile(r'name="(?:\w-)?csrf_token" (?:type="hidden" )?value="([^"]+)"')
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.live


@dataclass
class Answer:
    status: int
    body: str
    cookie: str


def request(
    base: str, method: str, path: str, *, form: dict[str, str] | None = None,
    payload: object = None, headers: dict[str, str] | None = None, source: int = 1,
) -> Answer:  # fmt: skip
    """Send one request from 127.0.0.<source>; return status, body and any new session cookie."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(
        url.hostname or "", url.port, timeout=60, source_address=(f"127.0.0.{source}", 0)
    )
    sent = {"Accept-Language": "en", **(headers or {})}
    data: bytes | None = None
    if form is not None:
        data = urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    elif payload is not None:
        data = json.dumps(payload).encode()
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        cookie = (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
        return Answer(resp.status, resp.read().decode(), cookie)
    finally:
        conn.close()


def in_parallel(send) -> list[Answer]:  # type: ignore[no-untyped-def]
    """Call ``send(i)`` for 40 values of i at once."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(send, range(2, PARALLEL + 2)))


def last_code(kind: str) -> str:
    with db.session() as session:
        body = session.scalars(
            select(SmsMessage.body).where(SmsMessage.kind == kind).order_by(SmsMessage.id.desc())  # type: ignore[union-attr]
        ).first()
    assert body is not None
    return re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]


def other_than(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def form_page(base: str, path: str, cookie: str = "") -> tuple[str, str]:
    """Return (session cookie, CSRF token) of the form on ``path``."""
    page = request(base, "GET", path, headers={"Cookie": cookie} if cookie else None)
    match = CSRF.search(page.body)
    assert match, page.body[:300]
    return page.cookie or cookie, match.group(1)


def test_sign_in_code(app: Flask, live_server: str) -> None:
    cookie, token = form_page(live_server, "/sign-in")
    sent = request(live_server, "POST", "/sign-in", form={"phone": HOLDER, "csrf_token": token},
                   headers={"Cookie": cookie})  # fmt: skip
    assert sent.status == 302, sent.body[:300]
    cookie = sent.cookie or cookie
    code = last_code("login_code")
    wrong = other_than(code)

    def attempt(source: int, typed: str = wrong) -> Answer:
        form = {"phone": HOLDER, "code": typed, "csrf_token": token}
        return request(live_server, "POST", "/sign-in/code", form=form,
                       headers={"Cookie": cookie}, source=source)  # fmt: skip

    answers = in_parallel(attempt)
    assert {a.status for a in answers} == {200}
    judged = [a for a in answers if "That code is not right" in a.body]
    assert len(judged) == MAX_TRIES
    assert all("Too many wrong codes" in a.body for a in answers if a not in judged)
    right = attempt(PARALLEL + 2, code)
    assert right.status == 200  # no redirect to /me: not signed in
    assert "Too many wrong codes" in right.body


def test_consent_request_code(app: Flask, live_server: str) -> None:
    with db.session() as session:
        world = factories.world(session)
        acme = session.get(Organization, world.org_ids["acme"])
        assert acme is not None
        # The confirm route allows 30 a minute per key: two keys share the 40 tries.
        keys = [world.keys["acme"], orgs.create_key(session, acme)[1]]
        session.commit()
    auth = {"Authorization": f"Bearer {keys[0]}"}
    made = request(live_server, "POST", "/api/v1/consent-requests", headers=auth, payload={
        "phone": HOLDER, "sender": "acme-cards", "channels": ["voice"], "wording": "Card offers",
    })  # fmt: skip
    assert made.status == 201, made.body
    path = f"/api/v1/consent-requests/{json.loads(made.body)['id']}/confirm"
    code = last_code("consent_otp")

    def attempt(source: int, typed: str = other_than(code)) -> Answer:
        return request(live_server, "POST", path, payload={"code": typed}, source=source,
                       headers={"Authorization": f"Bearer {keys[source % 2]}"})  # fmt: skip

    answers = in_parallel(attempt)
    statuses = [a.status for a in answers]
    assert statuses.count(422) == MAX_TRIES, statuses  # judged, and wrong
    assert statuses.count(409) == PARALLEL - MAX_TRIES  # locked, not judged
    assert all(json.loads(a.body)["error"]["code"] for a in answers)
    right = attempt(PARALLEL + 2, code)
    assert right.status == 409
    assert json.loads(right.body)["error"]["code"] == "conflict"


def test_console_password(app: Flask, live_server: str) -> None:
    with db.session() as session:
        staff = accounts.create_staff(session, "officer@regulator.example", PASSWORD, "officer")
        session.commit()
    cookie, token = form_page(live_server, "/admin/login")

    def attempt(source: int, password: str = "wrong password, twelve+") -> Answer:
        form = {"email": "officer@regulator.example", "password": password,
                "code": pyotp.TOTP(staff.totp_secret).now(), "csrf_token": token}  # fmt: skip
        return request(live_server, "POST", "/admin/login", form=form,
                       headers={"Cookie": cookie}, source=source)  # fmt: skip

    answers = in_parallel(attempt)
    statuses = [a.status for a in answers]
    # Four judged wrong answers say so; the fifth judged one locks (429), as does
    # every attempt that found the account locked.
    assert statuses.count(401) == MAX_TRIES - 1, statuses
    assert statuses.count(429) == PARALLEL - (MAX_TRIES - 1)
    right = attempt(PARALLEL + 2, PASSWORD)
    assert right.status == 429
    assert "locked" in right.body
