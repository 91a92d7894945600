"""Bad input answers 4xx in the envelope, never 500: calendar edges, huge integers, CRLF.

(The schemathesis run in test_fuzz.py looks for more of the same; these are
the cases found by hand, kept as regressions.)
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Api
from tests.factories import HOLDER, World

EDGES = [
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+08:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-12:00",
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59-08:00",
    "9999-12-31T23:59:59+14:00",
    "1899-12-31T23:59:59Z",
]


def _operations(t: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation taking a time, with ``t`` in its time field: (key, path, body)."""
    check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
    evidence = {"method": "web_form", "captured_at": "2026-01-01T10:00:00+08:00"}
    consent = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "evidence": evidence}
    optout = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    row = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms", "state": "allow"}
    return [
        ("acme", "/check", {**check, "at": t}),
        ("acme", "/check/batch", {"phones": [HOLDER], "sender": "acme-cards", "channel": "sms", "at": t}),
        ("acme", "/consents", {**consent, "evidence": {**evidence, "captured_at": t}}),
        ("acme", "/consents", {**consent, "expires_at": t}),
        ("acme", "/optouts", {**optout, "received_at": t}),
        ("acme", "/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "TD", "received_at": t}),
        ("acme", "/delegations", {"agent": "shop", "senders": ["acme-cards"], "scopes": ["check"], "expires_at": t}),
        ("shop", "/sync/compare", {"rows": [row], "at": t}),
    ]  # fmt: skip


@pytest.mark.parametrize("t", EDGES)
def test_times_at_the_calendars_edge_are_422(acme: Api, shop: Api, t: str) -> None:
    apis = {"acme": acme, "shop": shop}
    for who, path, body in _operations(t):
        resp = apis[who].post(path, body)
        assert resp.status_code == 422, (path, body, resp.get_json())
        error = resp.get_json()["error"]
        assert error["code"] == "validation_error"
        assert "1900 to 9000" in str(error), error


@pytest.mark.parametrize("t", EDGES)
def test_a_disconnection_at_the_calendars_edge_is_rejected_by_row(carrier: Api, t: str) -> None:
    resp = carrier.post(
        "/numbers/disconnections", {"disconnections": [{"phone": HOLDER, "disconnected_at": t}]}
    )
    assert resp.status_code == 202
    answer = resp.get_json()
    assert answer["accepted"] == 0
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert answer["rejected"][0]["error"]["code"] == "validation_error"


def test_times_inside_the_range_still_work(acme: Api) -> None:
    assert acme.check(HOLDER, at="1900-01-01T12:00:00+08:00")["decision"] in ("allow", "deny")
    assert acme.check(HOLDER, at="9000-12-31T12:00:00+08:00")["decision"] in ("allow", "deny")


@pytest.mark.parametrize(
    "query", ["after=99999999999999999999", "after=9223372036854775808", "after=-1"]
)
def test_query_integers_beyond_64_bits_are_422(acme: Api, query: str) -> None:
    resp = acme.get(f"/consents?{query}")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["field"] == "after"
    assert acme.get("/changes?after=99999999999999999999").status_code == 422


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/99999999999999999999999",
        "/webhooks/9223372036854775808",
        "/webhooks/9223372036854775806",  # a BIGINT, but not an INTEGER: the webhook id column
        "/webhooks/2147483648",
        "/webhooks/0",
        "/consents/99999999999999999999999",
        "/delegations/99999999999999999999999/revoke",
    ],
)
def test_path_integers_beyond_64_bits_are_404(client: FlaskClient, world: World, path: str) -> None:
    headers = {"Authorization": f"Bearer {world.keys['acme']}"}
    for method in ("GET", "POST", "DELETE"):
        resp = client.open(f"/api/v1{path}", method=method, headers=headers)
        assert resp.status_code in (404, 405), (method, path)
        assert "error" in resp.get_json()
    resp = client.delete(f"/api/v1{path}", headers=headers)
    if path.startswith("/webhooks"):
        assert resp.status_code == 404
        assert resp.get_json()["error"]["code"] == "not_found"


def test_the_largest_ids_are_ordinary_404s(acme: Api) -> None:
    resp = acme.client.delete("/api/v1/webhooks/2147483647", headers=acme.headers())
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"
    resp = acme.get("/consents/9223372036854775807")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("since", ["0001-01-01", "9999-12-31"])
def test_a_reassignment_question_at_the_calendars_edge_is_422(carrier: Api, since: str) -> None:
    resp = carrier.get(f"/numbers/{HOLDER}/reassigned?since={since}")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["field"] == "since"
