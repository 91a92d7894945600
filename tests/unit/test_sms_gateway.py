"""The SMS gateway backends: console outbox, and HTTP against a real local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from registry.sms import services as sms
from tests.factories import HOLDER


class Gateway:
    """A local HTTP gateway that fails the first ``failures`` posts, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict] = []  # type: ignore[type-arg]
        self.auth: list[str | None] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.auth.append(self.headers.get("Authorization"))
                if gateway.failures > 0:
                    gateway.failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                gateway.received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway(failures=1)
    yield gw
    gw.close()


def test_http_backend_retries_until_the_gateway_accepts(
    app: Flask, session: Session, gateway: Gateway
) -> None:
    settings = replace(
        app.config["REGISTRY"], sms_backend="http", sms_http_url=gateway.url, sms_http_token="tok"
    )
    message = sms.send(session, HOLDER, "hello", "test")
    session.commit()
    assert sms.deliver(session, settings) == (0, 1)
    assert message.status == "queued"
    assert message.last_error is not None  # visible, not dropped
    message.sent_at = None  # make the retry due now instead of after the backoff
    session.commit()
    assert sms.deliver(session, settings) == (1, 0)
    assert message.status == "sent"
    assert gateway.received == [
        {"id": message.id, "from": "10690000", "to": HOLDER, "text": "hello", "kind": "test"}
    ]
    assert gateway.auth == ["Bearer tok", "Bearer tok"]


def test_http_backend_gives_up_loudly_after_many_tries(app: Flask, session: Session) -> None:
    settings = replace(
        app.config["REGISTRY"], sms_backend="http", sms_http_url="http://127.0.0.1:9/nothing"
    )
    message = sms.send(session, HOLDER, "hello", "test")
    session.commit()
    for _ in range(sms.MAX_ATTEMPTS):
        message.sent_at = None
        session.commit()
        sms.deliver(session, settings)
    assert message.status == "failed"
    assert message.attempts == sms.MAX_ATTEMPTS


def test_console_backend_and_outbox_command(app: Flask, session: Session) -> None:
    sms.send(session, HOLDER, "验证码 123456", "login_code")
    session.commit()
    assert sms.deliver(session, app.config["REGISTRY"]) == (1, 0)
    result = app.test_cli_runner().invoke(args=["sms", "outbox", "--phone", "138 0013 8000"])
    assert result.exit_code == 0
    assert "验证码 123456" in result.output
    assert "sent" in result.output


@pytest.mark.live
def test_parallel_deliverers_send_each_message_once(app: Flask, session: Session) -> None:
    """Four deliverers at once (app workers and the worker): every message reaches the gateway once."""
    from registry.extensions import db

    gw = Gateway(failures=0)
    try:
        settings = replace(app.config["REGISTRY"], sms_backend="http", sms_http_url=gw.url)
        ids = [sms.send(session, HOLDER, f"m{i}", "test").id for i in range(40)]
        session.commit()
        totals: list[tuple[int, int]] = []

        def deliverer() -> None:
            with app.app_context(), db.session() as own:
                totals.append(sms.deliver(own, settings, limit=100))

        threads = [threading.Thread(target=deliverer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        received = sorted(body["id"] for body in gw.received)
        assert received == sorted(ids)  # each exactly once
        assert sum(sent for sent, _ in totals) == 40
    finally:
        gw.close()


def test_a_request_delivers_only_what_it_queued(app: Flask, session: Session) -> None:
    """A holder's sign-in request sends the holder's code, not other people's queued texts."""
    other = sms.send(session, "+8613900139000", "someone else's text", "test")
    session.commit()
    sms.queued_by(session)  # queued by the test, not by the request below
    client = app.test_client()
    page = client.get("/sign-in")
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    client.post("/sign-in", data={"csrf_token": token.split('"')[0], "phone": HOLDER})
    mine = sms.outbox(session, HOLDER)
    assert [m.status for m in mine if m.kind == "login_code"] == ["sent"]
    session.refresh(other)
    assert other.status == "queued"


def test_a_claim_left_by_a_dead_deliverer_runs_out(app: Flask, session: Session) -> None:
    """A message claimed by a deliverer that died is sent by the next one after the lease."""
    from datetime import timedelta

    from registry.timeutil import utcnow

    message = sms.send(session, HOLDER, "hello", "test")
    session.commit()
    message.status, message.sent_at = "sending", utcnow() + sms.LEASE  # claimed, never finished
    session.commit()
    assert sms.deliver(session, app.config["REGISTRY"]) == (0, 0)  # still leased
    message.sent_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert sms.deliver(session, app.config["REGISTRY"]) == (1, 0)
    assert message.status == "sent"
