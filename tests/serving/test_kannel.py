"""Kannel as the registry's SMS gateway, against a live Anning server (issue 18).

bearerbox, smsbox and the fake SMSC run on 127.0.0.1 with the shipped
configuration (tests/kannel.py); Anning serves HTTP on a free port with
``REGISTRY_SMS_BACKEND=kannel``. The registry's texts reach the fake phone
through Kannel's sendsms, the phone's replies reach Anning through the
``sms-service`` post-url, and Kannel's delivery reports come back to the
signed dlr-url.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from registry.consent.models import OptOut
from registry.extensions import db
from registry.sms.models import SmsMessage
from tests import factories
from tests.conftest import other_app
from tests.factories import HOLDER, HOLDER2
from tests.kannel import INSTALLED, SENDSMS_PASSWORD, SKIP_REASON, Kannel, wait_for
from tests.serving.server import free_port
from tests.web.test_lockouts_parallel import form_page, request

pytestmark = [pytest.mark.live, pytest.mark.skipif(not INSTALLED, reason=SKIP_REASON)]
BYSTANDER = "+8613100000999"  # the first phone on the fake SMSC (it must send to connect)


@dataclass
class Wired:
    """Anning and Kannel, wired together, with the keys of the world they serve."""

    base: str
    kannel: Kannel
    keys: dict[str, str]

    def api(self, method: str, path: str, body: Any = None, key: str = "acme") -> tuple[int, Any]:
        """Call Anning's API over HTTP with an organization's key."""
        req = urllib.request.Request(
            f"{self.base}/api/v1{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.keys[key]}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def reason(self, phone: str = HOLDER) -> str:
        """Return the check's reason for acme-cards texting ``phone`` now.

        Now, not at the suite's NOON of 2030: a pending request expires before then.
        Both reasons asked here (consent_pending, opted_out) come before the hours.
        """
        status, answer = self.api("POST", "/check", {"phone": phone, "sender": "acme-cards",
                                                      "channel": "sms"})  # fmt: skip
        assert status == 200, answer
        return str(answer["reason"])


@pytest.fixture
def wired(app: Flask, tmp_path: Path) -> Iterator[Wired]:
    """Start Anning (Kannel backend) and Kannel; stop both after the test."""
    with db.session() as session:
        world = factories.world(session)
        gateway_key = factories.gateway(session)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    kannel = Kannel(tmp_path, base, gateway_key)
    env = {
        "REGISTRY_SMS_BACKEND": "kannel",
        "REGISTRY_SMS_KANNEL_URL": kannel.sendsms_url,
        "REGISTRY_SMS_KANNEL_USERNAME": "anning",
        "REGISTRY_SMS_KANNEL_PASSWORD": SENDSMS_PASSWORD,
        "REGISTRY_SMS_DLR_BASE_URL": base,
    }
    with other_app(app.config["REGISTRY"].database_url, tmp_path / "instance", **env) as served:
        server = make_server("127.0.0.1", port, served, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            kannel.start()
            kannel.send_from_phone(BYSTANDER, "HELP")  # connects the fake SMSC
            yield Wired(base, kannel, dict(world.keys))
        finally:
            kannel.stop()
            server.shutdown()
            thread.join(timeout=10)


def messages(kind: str) -> list[SmsMessage]:
    with db.session() as session:
        return list(session.scalars(select(SmsMessage).where(SmsMessage.kind == kind)))


def test_a_td_from_the_phone_refuses_the_request_it_was_texted(wired: Wired) -> None:
    body = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
            "evidence": {"method": "web_form", "captured_at": "2026-12-01T10:00:00Z"}}  # fmt: skip
    status, made = wired.api("POST", "/consents", body)
    assert (status, made["status"]) == (201, "pending"), made
    # The confirmation text went out through Kannel to the phone, naming the sender.
    texts = wait_for("the confirmation text", lambda: wired.kannel.texts_to(HOLDER))
    assert "TD" in texts[0], texts  # type: ignore[index]
    assert wired.reason() == "consent_pending"

    wired.kannel.send_from_phone(HOLDER, "TD")
    wait_for("the opt-out", lambda: wired.reason() == "opted_out")
    with db.session() as session:
        refusal = session.scalars(select(OptOut).where(OptOut.phone == HOLDER)).one()
    assert refusal.text == "TD"
    # The registry's answer reaches the phone through Kannel too.
    wait_for("the answer", lambda: len(wired.kannel.texts_to(HOLDER)) >= 2)
    # And Kannel's delivery reports came back to the signed dlr-url.
    wait_for("the delivery report",
             lambda: {m.delivery for m in messages("consent_confirm")} == {"delivered"})  # fmt: skip


def test_a_sign_in_code_asked_on_the_site_arrives_at_the_phone(wired: Wired) -> None:
    cookie, token = form_page(wired.base, "/sign-in")
    sent = request(wired.base, "POST", "/sign-in", form={"phone": HOLDER2, "csrf_token": token},
                   headers={"Cookie": cookie})  # fmt: skip
    assert sent.status == 302, sent.body[:300]
    cookie = sent.cookie or cookie
    wired.kannel.send_from_phone(HOLDER2, "HELP")  # the holder's phone on the fake SMSC
    texts = wait_for("the sign-in code", lambda: [
        t for t in wired.kannel.texts_to(HOLDER2) if re.search(r"\b\d{6}\b", t)])  # fmt: skip
    code = re.search(r"\b(\d{6})\b", texts[0]).group(1)  # type: ignore[index,union-attr]
    signed_in = request(wired.base, "POST", "/sign-in/code",
                        form={"phone": HOLDER2, "code": code, "csrf_token": token},
                        headers={"Cookie": cookie})  # fmt: skip
    assert signed_in.status == 302, signed_in.body[:300]


def test_a_reply_kannel_brings_for_another_port_is_logged_and_changes_nothing(
    wired: Wired, caplog: pytest.LogCaptureFixture
) -> None:
    wired.kannel.send_from_phone(HOLDER, "TD", to="10690001")  # a sender's port, not ours
    wait_for("Anning to refuse it", lambda: "not the registry's number" in caplog.text)
    assert "to <10690001>" in wired.kannel.smsbox_log()  # smsbox did post it to Anning
    with db.session() as session:
        assert session.scalars(select(OptOut)).all() == []
    # Both ends are still up: the next reply, to the registry's number, is handled.
    wired.kannel.send_from_phone(HOLDER, "HELP")
    wait_for("the answer to HELP", lambda: wired.kannel.texts_to(HOLDER))
