"""Webhooks never reach private networks: refused at creation and at every delivery.

Creation goes through the API (422 in the envelope); delivery through the
worker, to real sockets on 127.0.0.1. Where a test needs a host *name* that
resolves to a chosen address (DNS rebinding, pinning), it replaces
``socket.getaddrinfo`` for that one name only: the machine has no DNS server
the test could configure, and every other name still resolves for real.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from registry.extensions import db
from registry.sync import egress, worker
from registry.sync.webhooks import DeliveryPolicy
from tests.api.test_webhooks import hooks, optouts
from tests.conftest import Api
from tests.factories import World
from tests.receiver import Receiver

POLICY = DeliveryPolicy(timeout=1.0, backoff_base=0.0)

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:6379/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",  # shared address space (carrier-grade NAT)
    "http://0.0.0.0/",
    "http://0/",
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/",  # ... in hexadecimal
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",  # ... in octal
    "http://127.1/",  # ... abbreviated
    "http://017700000001/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost:8080/",
    "http://[::1]/",
    "http://[::]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:a00:1]/",  # 10.0.0.1, mapped
    "http://[fe80::1]/",  # link-local
    "http://[fc00::1]/",  # unique local
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",  # multicast
    "http://[2002:7f00:1::1]/",  # 6to4 around 127.0.0.1
    "http://[2002:c0a8:101::1]/",  # 6to4 around 192.168.1.1
    "http://[64:ff9b::7f00:1]/",  # NAT64 around 127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "https://10.1.2.3:8443/hook",
]


@pytest.fixture
def allow_private(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a deployment with REGISTRY_WEBHOOK_ALLOW_PRIVATE=true."""
    settings = replace(app.config["REGISTRY"], webhook_allow_private=True)
    monkeypatch.setitem(app.config, "REGISTRY", settings)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answer chosen names with chosen addresses; every other name resolves for real."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host in answers:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port))
                for a in answers[host]
            ]  # fmt: skip
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def deliver(app: Flask) -> worker.Tick:
    return worker.tick(db.session, app.config["REGISTRY"], POLICY)


@pytest.mark.parametrize("url", REFUSED)
def test_private_targets_are_refused_at_creation(acme: Api, url: str) -> None:
    resp = acme.post("/webhooks", {"url": url})
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "url"
    assert hooks(acme) == []


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hook", "http://[2606:4700::1111]/hook", "https://example.com/anning"],
)
def test_public_targets_are_accepted(acme: Api, url: str) -> None:
    assert acme.post("/webhooks", {"url": url}).status_code == 201


def test_the_setting_allows_private_targets(acme: Api, allow_private: None) -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://10.0.0.1/", "http://localhost/"):
        assert acme.post("/webhooks", {"url": url}).status_code == 201


def test_a_name_resolving_to_a_private_address_is_refused_at_creation(
    acme: Api, dns: dict[str, list[str]]
) -> None:
    dns["intranet.anning.test"] = ["10.0.0.7"]
    dns["mixed.anning.test"] = ["93.184.215.14", "127.0.0.1"]  # one bad answer is enough
    for host in ("intranet.anning.test", "mixed.anning.test"):
        resp = acme.post("/webhooks", {"url": f"https://{host}/hook"})
        assert resp.status_code == 422
        assert resp.get_json()["error"]["details"][0]["field"] == "url"


def test_a_hook_made_private_later_is_refused_at_delivery(
    app: Flask, acme: Api, world: World, session: Session, receiver: Receiver,
    dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # DNS rebinding: the name was public when the hook was made, and now
    # answers 127.0.0.1, where the receiver listens.
    port = receiver.url.split(":")[2].split("/")[0]
    dns["rebind.anning.test"] = ["93.184.215.14"]
    assert acme.post("/webhooks", {"url": f"http://rebind.anning.test:{port}/hook"}).status_code == 201  # fmt: skip
    dns["rebind.anning.test"] = ["127.0.0.1"]
    optouts(session, world, 1)
    assert deliver(app).failed == 1
    assert receiver.deliveries == []
    assert hooks(acme)[0]["last_error"] == egress.NOT_PUBLIC
    # A hook stored by a deployment that allowed private targets, delivered by
    # one that does not: refused too, at delivery.
    settings = app.config["REGISTRY"]
    monkeypatch.setitem(app.config, "REGISTRY", replace(settings, webhook_allow_private=True))
    acme.post("/webhooks", {"url": receiver.url})
    monkeypatch.setitem(app.config, "REGISTRY", settings)
    optouts(session, world, 1, start=1)
    assert deliver(app).failed == 2
    assert receiver.deliveries == []
    assert {h["last_error"] for h in hooks(acme)} == {egress.NOT_PUBLIC}


def test_the_connection_goes_to_the_resolved_address_with_the_host_name_kept(
    app: Flask, acme: Api, world: World, session: Session, receiver: Receiver,
    dns: dict[str, list[str]], allow_private: None,
) -> None:  # fmt: skip
    port = receiver.url.split(":")[2].split("/")[0]
    dns["receiver.anning.test"] = ["127.0.0.1"]
    acme.post("/webhooks", {"url": f"http://receiver.anning.test:{port}/hook"})
    optouts(session, world, 1)
    assert deliver(app).delivered == 1
    assert [d.host for d in receiver.deliveries] == [f"receiver.anning.test:{port}"]


class _Listener:
    """A TCP port on 127.0.0.1 that answers like something other than HTTP."""

    def __init__(self, banner: bytes | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.banner = banner
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.banner is not None:
                conn.sendall(self.banner)
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nobody listens there now
    return port


def test_errors_do_not_tell_a_closed_port_from_an_open_one(
    app: Flask, acme: Api, world: World, session: Session, allow_private: None
) -> None:
    ssh = _Listener(b"SSH-2.0-OpenSSH_9.2\r\n")
    silent = _Listener(None)
    try:
        ports = {"closed": _closed_port(), "ssh": ssh.port, "silent": silent.port}
        for port in ports.values():
            acme.post("/webhooks", {"url": f"http://127.0.0.1:{port}/hook"})
        optouts(session, world, 1)
        assert deliver(app).failed == 3
        errors = {h["url"]: h["last_error"] for h in hooks(acme)}
        assert set(errors.values()) == {egress.NO_RESPONSE}
    finally:
        ssh.close()
        silent.close()


def test_a_name_that_does_not_resolve_fails_at_delivery(
    app: Flask, acme: Api, world: World, session: Session
) -> None:
    acme.post("/webhooks", {"url": "https://nowhere.invalid/hook"})
    optouts(session, world, 1)
    assert deliver(app).failed == 1
    assert hooks(acme)[0]["last_error"] == egress.UNRESOLVED
