"""The OpenAPI document lists every status an operation answers: each one provoked here.

Every answer below is compared with the document's ``responses`` for its
operation; the schemathesis lanes (test_schemathesis.py) do the same for
whatever they generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from registry.api.openapi import ERRORS
from registry.extensions import db
from tests import factories
from tests.api.test_consents import consent_body
from tests.conftest import Api, other_app
from tests.factories import HOLDER


@pytest.fixture
def documented(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").get_json()["paths"]  # type: ignore[no-any-return]


class Observed:
    """Answers, checked one by one against the document."""

    def __init__(self, documented: dict[str, Any]) -> None:
        self.documented = documented

    def __call__(self, resp: Any, method: str, path: str, expected: int) -> Any:
        assert resp.status_code == expected, (method, path, resp.get_json())
        listed = self.documented[f"/api/v1{path}"][method.lower()]["responses"]
        assert str(expected) in listed, (method, path, expected, sorted(listed))
        if expected >= 400:
            assert set(resp.get_json()) == {"error"}
        return resp


@pytest.fixture
def observed(documented: dict[str, Any]) -> Observed:
    return Observed(documented)


def test_consent_statuses(acme: Api, shop: Api, observed: Observed) -> None:
    body = consent_body(external_id="crm-7")
    made = observed(acme.post("/consents", body), "POST", "/consents", 201)
    observed(acme.post("/consents", body), "POST", "/consents", 200)  # replayed external_id
    consent_id = made.get_json()["id"]
    revoke = f"/consents/{consent_id}/revoke"
    observed(acme.post(revoke), "POST", "/consents/{consent_id}/revoke", 200)
    observed(acme.post(revoke), "POST", "/consents/{consent_id}/revoke", 409)  # already revoked
    observed(shop.post(revoke), "POST", "/consents/{consent_id}/revoke", 403)  # not shop's
    observed(acme.get("/consents/999999"), "GET", "/consents/{consent_id}", 404)
    observed(acme.get("/consents?after=-1"), "GET", "/consents", 422)
    wrong = {**body, "evidence": {**body["evidence"], "captured_at": "0001-01-01T00:00:00"}}
    observed(acme.post("/consents", wrong), "POST", "/consents", 422)


def test_auth_body_and_size_statuses(
    client: FlaskClient, acme: Api, carrier: Api, observed: Observed
) -> None:
    check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
    observed(client.post("/api/v1/check", json=check), "POST", "/check", 401)
    observed(carrier.post("/check", check), "POST", "/check", 403)  # not acme's sender
    not_json = acme.client.post("/api/v1/check", data="{", headers={**acme.headers(), "Content-Type": "application/json"})  # fmt: skip
    observed(not_json, "POST", "/check", 400)
    many = {"phones": [HOLDER] * 10_001, "sender": "acme-cards", "channel": "sms"}
    observed(acme.post("/check/batch", many), "POST", "/check/batch", 413)
    rows = {"disconnections": [{"phone": HOLDER, "disconnected_at": "2026-01-01T00:00:00Z"}]}
    observed(carrier.post("/numbers/disconnections", rows), "POST", "/numbers/disconnections", 202)
    observed(acme.post("/numbers/disconnections", rows), "POST", "/numbers/disconnections", 403)


def test_webhook_statuses(acme: Api, observed: Observed) -> None:
    made = acme.post("/webhooks", {"url": "https://example.com/h"})
    observed(made, "POST", "/webhooks", 201)
    observed(acme.post("/webhooks", {"url": "http://10.0.0.1/"}), "POST", "/webhooks", 422)
    hook = f"/webhooks/{made.get_json()['id']}"
    delete = acme.client.delete(f"/api/v1{hook}", headers=acme.headers())
    observed(delete, "DELETE", "/webhooks/{hook_id}", 204)
    again = acme.client.delete(f"/api/v1{hook}", headers=acme.headers())
    observed(again, "DELETE", "/webhooks/{hook_id}", 404)


@pytest.mark.live  # a second app (its own limits) sees only committed data
def test_rate_limited_is_documented(app: Flask, tmp_path: Path, documented: dict[str, Any]) -> None:
    observed = Observed(documented)
    with db.session() as session:
        world = factories.world(session)
    optout = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_WRITE="1 per minute"
    ) as limited:
        api = Api(limited.test_client(), world.keys["acme"])
        observed(api.post("/optouts", optout), "POST", "/optouts", 201)
        observed(api.post("/optouts", optout), "POST", "/optouts", 429)


def test_every_operation_documents_its_errors(documented: dict[str, Any]) -> None:
    for path, methods in documented.items():
        for method, op in methods.items():
            codes = {int(c) for c in op["responses"]}
            assert {422, 429, 503} <= codes, (method, path)
            assert any(200 <= c < 300 for c in codes), (method, path)
            if "{" in path:
                assert 404 in codes, (method, path)
            if "requestBody" in op:
                assert {400, 413} <= codes, (method, path)
            for code in codes - set(range(200, 300)):
                assert op["responses"][str(code)]["description"] in ERRORS.values() or code in (409,), (method, path, code)  # fmt: skip


def test_chain_statuses(acme: Api, carrier: Api, observed: Observed) -> None:
    """Issue 15: connections, their withdrawal, the network check, the carrier's views."""
    body = {"organization": "acme", "kind": "sms_port", "addresses": ["10690001"]}
    made = observed(carrier.post("/connections", body), "POST", "/connections", 201)
    observed(carrier.post("/connections", body), "POST", "/connections", 409)
    observed(acme.post("/connections", body), "POST", "/connections", 403)
    observed(carrier.get("/connections"), "GET", "/connections", 200)
    withdraw = f"/connections/{made.get_json()['connections'][0]['id']}/withdraw"
    path = "/connections/{connection_id}/withdraw"
    observed(carrier.post(withdraw, {}), "POST", path, 200)
    observed(carrier.post(withdraw, {}), "POST", path, 409)
    observed(carrier.post("/connections/99999/withdraw", {}), "POST", path, 404)
    check = {"phone": HOLDER, "from": "10690001"}
    observed(carrier.post("/network/check", check), "POST", "/network/check", 200)
    observed(acme.post("/network/check", check), "POST", "/network/check", 403)
    observed(carrier.post("/network/check", {"phone": HOLDER}), "POST", "/network/check", 422)
    observed(carrier.get("/carrier/complaints"), "GET", "/carrier/complaints", 200)
    observed(carrier.get("/carrier/sanctions?limit=0"), "GET", "/carrier/sanctions", 422)
    observed(
        acme.post("/senders/acme-cards/addresses", {"addresses": ["10690021"]}),
        "POST", "/senders/{code}/addresses", 201,
    )  # fmt: skip
    proofs = "/senders/{code}/address-proofs"
    observed(
        acme.post("/senders/acme-cards/address-proofs", {"address": "+12025550123"}),
        "POST",
        proofs,
        422,
    )  # fmt: skip  (not an address of the sender)
    observed(acme.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms",
                                  "from": "nope"}), "POST", "/check", 422)  # fmt: skip


def test_scrub_statuses(acme: Api, shop: Api, observed: Observed) -> None:
    csv_headers = {**acme.headers(), "Content-Type": "text/csv"}
    upload = "/api/v1/scrubs?sender=acme-cards&channel=sms"
    made = observed(
        acme.client.post(upload, data=HOLDER, headers=csv_headers), "POST", "/scrubs", 202
    )
    job = made.get_json()["id"]
    observed(acme.client.post(upload, data=b"", headers=csv_headers), "POST", "/scrubs", 422)
    form = {**acme.headers(), "Content-Type": "multipart/form-data; boundary=x"}
    observed(acme.client.post(upload, data=b"--x--", headers=form), "POST", "/scrubs", 400)
    shop_headers = {**shop.headers(), "Content-Type": "text/csv"}
    observed(shop.client.post(upload, data=HOLDER, headers=shop_headers), "POST", "/scrubs", 403)
    observed(acme.get(f"/scrubs/{job}"), "GET", "/scrubs/{job_id}", 200)
    observed(shop.get(f"/scrubs/{job}"), "GET", "/scrubs/{job_id}", 403)
    observed(acme.get("/scrubs/999999"), "GET", "/scrubs/{job_id}", 404)
    observed(acme.get(f"/scrubs/{job}/result.csv"), "GET", "/scrubs/{job_id}/result.csv", 409)
    observed(acme.get(f"/scrubs/{job}/certificate"), "GET", "/scrubs/{job_id}/certificate", 409)
    observed(acme.get("/certificates/forged"), "GET", "/certificates/{token}", 422)
