"""What sits in front of the app: sizes refused in the envelope, gunicorn's own bounds,
and /metrics for this machine or a token only.

The first tests go through the WSGI app (Flask's test client); the last ones
run the README's serve command (real gunicorn, 2 workers) and speak raw HTTP.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from registry.config import ConfigError, load_settings
from tests.conftest import Api, other_app
from tests.serving.server import Served, quickstart_serve, serving

TOKEN = "metrics-token-for-tests-0123"
REMOTE = {"REMOTE_ADDR": "203.0.113.9"}


def error_code(resp) -> str:  # type: ignore[no-untyped-def]
    return str(resp.get_json()["error"]["code"])


def test_a_request_target_over_4_kb_is_414_in_the_envelope(acme: Api) -> None:
    resp = acme.get("/senders?q=" + "x" * 4100)
    assert resp.status_code == 414
    assert error_code(resp) == "too_large"
    assert acme.get("/senders?q=" + "x" * 3000).status_code == 200  # below the bound: answered


def test_a_header_over_8_kb_is_431_in_the_envelope(acme: Api) -> None:
    resp = acme.client.post(
        "/api/v1/check", json={"phone": "+8613800138000", "sender": "acme-cards", "channel": "sms"},
        headers={**acme.headers(), "X-Pad": "x" * 9000},
    )  # fmt: skip
    assert resp.status_code == 431
    assert error_code(resp) == "too_large"
    assert "X-Pad" in resp.get_json()["error"]["message"]


def test_the_site_answers_an_oversize_header_with_a_page_not_json(client: FlaskClient) -> None:
    resp = client.get("/sign-in", headers={"X-Pad": "x" * 9000})
    assert resp.status_code == 431
    assert resp.mimetype == "text/html"


def test_an_oversize_body_is_413_in_the_envelope(acme: Api) -> None:
    resp = acme.client.post(
        "/api/v1/check", data=b"x" * (32 * 1024 * 1024 + 1),
        headers={**acme.headers(), "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status_code == 413
    assert error_code(resp) == "too_large"


def test_openapi_documents_414_and_431(client: FlaskClient) -> None:
    check = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/check"]["post"]
    assert {"414", "431"} <= set(check["responses"])


def test_metrics_answer_this_machine_and_nobody_else(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", environ_base=REMOTE).status_code == 403
    # Through a proxy on this machine: the peer is loopback, the visitor is not.
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403
    assert client.get("/metrics", headers={"Forwarded": "for=127.0.0.1"}).status_code == 403
    # No token is configured: none is accepted.
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", environ_base=REMOTE, headers=bearer).status_code == 403


@pytest.fixture
def tokened(database_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    with other_app(database_url, tmp_path, REGISTRY_METRICS_TOKEN=TOKEN) as extra:
        yield extra.test_client()


@pytest.mark.live  # a second app on the same database: no transaction held open
def test_metrics_answer_the_token_from_anywhere_and_refuse_a_wrong_one(
    tokened: FlaskClient,
) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    resp = tokened.get("/metrics", environ_base=REMOTE, headers=good)
    assert resp.status_code == 200
    assert "anning_" in resp.get_data(as_text=True)
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
    assert tokened.get("/metrics", environ_base=REMOTE, headers=wrong).status_code == 403
    assert tokened.get("/metrics", environ_base=REMOTE).status_code == 403


@pytest.fixture
def proxied(database_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    with other_app(database_url, tmp_path, REGISTRY_TRUSTED_PROXIES="1") as extra:
        yield extra.test_client()


@pytest.mark.live
def test_behind_a_trusted_proxy_the_forwarded_address_decides(proxied: FlaskClient) -> None:
    outside = {"X-Forwarded-For": "203.0.113.9"}
    assert proxied.get("/metrics", headers=outside).status_code == 403
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [("METRICS_TOKEN", "short"), ("TRUSTED_PROXIES", "9"), ("TRUSTED_PROXIES", "one")],
)
def test_bad_edge_settings_stop_the_start(tmp_path: Path, name: str, value: str) -> None:
    env = {"REGISTRY_SECRET_KEY": "x" * 32, f"REGISTRY_{name}": value}
    with pytest.raises(ConfigError, match=f"REGISTRY_{name}"):
        load_settings(tmp_path, env)


# Under real gunicorn, as the README starts it.


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    argv, env, port = quickstart_serve(tmp_path_factory.mktemp("edge"))
    with serving(argv, env, port) as server:
        yield server


def raw(served: Served, method: str, target: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request(method, target, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    conn.close()
    return resp.status, resp.getheader("Content-Type") or "", body


def test_three_visitors_in_a_row_each_send_the_sign_in_form(served: Served) -> None:
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/sign-in")
        resp = conn.getresponse()
        cookie = (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
        page = resp.read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        conn.request(
            "POST", "/sign-in", body=f"csrf_token={token}&phone=%2B8613100000001",
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert conn.getresponse().status in (302, 303)
        conn.close()


def test_under_gunicorn_what_the_app_sees_is_answered_in_the_envelope(served: Served) -> None:
    status, kind, body = raw(served, "GET", "/api/v1/senders?q=" + "x" * 5000)
    assert (status, kind) == (414, "application/json")
    assert '"too_large"' in body
    status, kind, body = raw(served, "GET", "/api/v1/senders", {"X-Pad": "x" * 9000})
    assert (status, kind) == (431, "application/json")
    assert '"too_large"' in body


def test_beyond_its_bounds_gunicorn_answers_itself(served: Served) -> None:
    # Documented in docs/security.md: these never reach the app.
    assert raw(served, "GET", "/api/v1/senders?q=" + "x" * 9000)[0] == 400  # request line > 8190
    assert raw(served, "GET", "/api/v1/senders", {"X-Pad": "x" * 17000})[0] == 431
    many = {f"X-H{i}": "1" for i in range(101)}
    assert raw(served, "GET", "/api/v1/senders", many)[0] == 431


def test_under_gunicorn_metrics_answer_loopback_but_not_a_proxied_visitor(served: Served) -> None:
    status, _, body = raw(served, "GET", "/metrics")
    assert status == 200
    assert "anning_" in body
    assert raw(served, "GET", "/metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
