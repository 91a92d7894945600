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
