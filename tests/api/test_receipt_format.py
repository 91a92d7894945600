"""The receipt is a wire format customers keep: plain itsdangerous tokens, old ones still valid.

Receipts are signed once per check by a serializer built once per process,
without the zlib attempt of itsdangerous' default (registry/tokens.py). What
leaves the registry must stay what any holder of the secret can verify with
the stock library, and receipts signed before, compressed or not, must keep
verifying through ``GET /receipts``.
"""

from __future__ import annotations

import json
import zlib

from flask import Flask
from itsdangerous import URLSafeSerializer
from itsdangerous.encoding import base64_encode

from registry.checks.receipts import KEYS
from registry.tokens import Signer
from tests.conftest import Api
from tests.factories import HOLDER


def _stock(app: Flask, purpose: str = "receipt") -> URLSafeSerializer:
    return URLSafeSerializer(app.config["REGISTRY"].secret_key, salt=f"anning.{purpose}")


def test_a_receipt_is_a_stock_itsdangerous_token_with_the_documented_keys(
    app: Flask, acme: Api
) -> None:
    answer = acme.check(HOLDER)
    payload = _stock(app).loads(answer["check_id"])
    assert set(payload) <= set(KEYS.values())
    assert (payload["p"], payload["s"], payload["c"], payload["d"], payload["r"]) == (
        HOLDER, "acme-cards", "sms", answer["decision"], answer["reason"],
    )  # fmt: skip
    batch = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER]}
    )
    assert "b" in _stock(app).loads(batch.get_json()["check_id"])


def test_an_older_compressed_receipt_still_verifies(app: Flask, acme: Api) -> None:
    answer = acme.check(HOLDER)
    claims = _stock(app).loads(answer["check_id"])
    # Signed as itsdangerous' default serializer does when zlib makes it shorter.
    body = b"." + base64_encode(zlib.compress(json.dumps(claims, separators=(",", ":")).encode()))
    token = _stock(app).make_signer().sign(body).decode()
    resp = acme.get(f"/receipts/{token}")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["decision"] == answer["decision"]
    assert resp.get_json()["phone"] == HOLDER


def test_a_token_signed_for_another_purpose_is_not_a_receipt(app: Flask, acme: Api) -> None:
    answer = acme.check(HOLDER)
    claims = _stock(app).loads(answer["check_id"])
    forged = _stock(app, "webhook").dumps(claims)
    resp = acme.get(f"/receipts/{forged}")
    assert resp.status_code == 422


def test_tokens_are_byte_for_byte_the_stock_serializers() -> None:
    # The registry's signer (one signer, one encoder, no zlib) writes what the stock
    # URLSafeSerializer writes for a payload zlib cannot shorten, non-ASCII text included.
    stock = URLSafeSerializer("a-secret", salt="anning.receipt")
    for payload in (
        {"s": "acme-cards", "c": "sms", "t": "2026-12-01T22:37:05.123456Z", "i": 7},
        {"s": "银行", "c": "voice", "t": "2026-12-01T22:37:05Z", "r": "consent", "q": None},
        ["a", 1, 2.5, True],
    ):
        assert Signer("a-secret", "receipt").dumps(payload) == stock.dumps(payload)
