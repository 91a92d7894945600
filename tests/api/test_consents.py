"""Consents with evidence, bulk, OTP consent, revocation, history — through HTTP."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from registry.consent.models import Consent, ConsentKey
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

EVIDENCE = {
    "method": "web_form",
    "captured_at": "2026-01-10T09:30:00+08:00",
    "wording": "I agree that Acme Bank may text me card offers.",
    "reference": "form-123",
    "sha256": "a" * 64,
    "ip": "203.0.113.7",
}


def consent_body(**kw):  # type: ignore[no-untyped-def]
    body = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "evidence": EVIDENCE}
    body.update(kw)
    return body


def now_iso() -> str:
    return utcnow().isoformat()


def reply(api: Api, text: str, phone: str = HOLDER, to: str = "10690001"):  # type: ignore[no-untyped-def]
    resp = api.post("/inbound-sms", {"from": phone, "to": to, "text": text})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def registry_reply(gateway: Api, text: str, phone: str = HOLDER):  # type: ignore[no-untyped-def]
    """Reply to the registry's own number, as the SMS gateway brings it."""
    resp = gateway.post("/gateway/inbound-sms", {"from": phone, "to": "10690000", "text": text})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_pending_consent_texts_holder_then_y_to_the_registry_allows(
    acme: Api, gateway: Api, session: Session
) -> None:
    resp = acme.post("/consents", consent_body())
    assert resp.status_code == 201
    consent = resp.get_json()
    assert consent["status"] == "pending"
    assert consent["evidence"]["wording"] == EVIDENCE["wording"]
    assert consent["evidence"]["captured_at"] == "2026-01-10T01:30:00Z"
    texts = session.scalars(select(SmsMessage.body).where(SmsMessage.phone == HOLDER)).all()
    assert any("Acme-Cards" in t and "Y" in t and "10690000" in t for t in texts)
    assert acme.check(HOLDER, at=now_iso())["reason"] == "consent_pending"
    # Before issue 12 the sender's own forwarded "Y" confirmed; now only the
    # holder's reply to the registry's number does.
    assert reply(acme, "Y")["action"] == "claim_recorded"
    assert acme.check(HOLDER, at=now_iso())["reason"] == "consent_pending"

    answer = registry_reply(gateway, "Y")
    assert (answer["action"], answer["consents"]) == ("confirm", [consent["id"]])
    assert acme.check(HOLDER)["reason"] == "consent"
    history = acme.get(f"/consents/{consent['id']}").get_json()["history"]
    assert [h["type"] for h in history] == ["created", "confirmed"]
    assert history[1]["via"] == "sms"


def test_confirmation_off_makes_consents_active(
    app: Flask, acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )
    resp = acme.post("/consents", consent_body())
    assert resp.get_json()["status"] == "active"
    assert acme.check(HOLDER)["reason"] == "consent"


def test_external_id_is_idempotent(acme: Api, session: Session) -> None:
    first = acme.post("/consents", consent_body(external_id="crm-42"))
    again = acme.post("/consents", consent_body(external_id="crm-42"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert session.scalar(select(func.count()).select_from(Consent)) == 1


def test_the_push_key_names_the_phone_and_consent_and_is_per_organization(
    acme: Api, shop: Api, session: Session
) -> None:
    first = acme.post("/consents", consent_body(external_id="crm-42")).get_json()
    keys = session.execute(select(ConsentKey.organization_id, ConsentKey.phone,
                                  ConsentKey.consent_id)).all()  # fmt: skip
    assert [(k.phone, k.consent_id) for k in keys] == [(HOLDER, first["id"])]
    # Another organization's same external_id is its own consent, not Acme's.
    other = shop.post("/consents", consent_body(sender="shop-deals", external_id="crm-42"))
    assert other.status_code == 201
    assert other.get_json()["id"] != first["id"]
    # The retry finds the consent through the key alone (docs/scaling.md): without
    # the key the same external_id is a new consent.
    assert acme.post("/consents", consent_body(external_id="crm-42")).status_code == 200
    session.execute(delete(ConsentKey).where(ConsentKey.consent_id == first["id"]))
    session.commit()
    assert acme.post("/consents", consent_body(external_id="crm-42")).status_code == 201


@pytest.mark.live
def test_external_id_raced_from_two_threads_makes_one_consent(app: Flask) -> None:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        world = factories.world(s)
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def post() -> None:
        client = app.test_client()
        api = Api(client, world.keys["acme"])
        barrier.wait()
        codes.append(api.post("/consents", consent_body(external_id="race-1")).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 200, 200, 201]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Consent)) == 1


def test_evidence_in_the_future_is_rejected(acme: Api, session: Session) -> None:
    future = (utcnow() + timedelta(days=2)).isoformat()
    resp = acme.post("/consents", consent_body(evidence={**EVIDENCE, "captured_at": future}))
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["field"] == "evidence.captured_at"
    assert session.scalar(select(func.count()).select_from(Consent)) == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"phone": "123"}, "invalid_phone"),
        ({"channels": []}, "validation_error"),
        ({"channels": ["fax"]}, "validation_error"),
        ({"sender": "ghost"}, "unknown_sender"),
        ({"sender": "shop-deals"}, "forbidden"),
        ({"evidence": {"method": "web_form"}}, "validation_error"),
        ({"evidence": {**EVIDENCE, "sha256": "xyz"}}, "validation_error"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "validation_error"),
        ({"category": "weapons"}, "validation_error"),
    ],
)
def test_bad_consents_are_refused_with_the_envelope(acme: Api, change: dict, code: str) -> None:  # type: ignore[type-arg]
    resp = acme.post("/consents", consent_body(**change))
    assert resp.status_code in (403, 422)
    assert resp.get_json()["error"]["code"] == code


def test_bulk_reports_each_item_in_order(acme: Api) -> None:
    items = [
        consent_body(external_id="b1"),
        consent_body(phone="nope"),
        {"phone": HOLDER2},
        "not an object",
        consent_body(phone=HOLDER2, external_id="b2", channels=["sms", "voice"]),
        consent_body(external_id="b1"),
    ]
    resp = acme.post("/consents/bulk", {"consents": items})
    assert resp.status_code == 200
    results = resp.get_json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert results[0]["created"] is True
    assert results[1]["error"]["code"] == "invalid_phone"
    assert results[2]["error"]["code"] == "validation_error"
    assert results[3]["error"]["code"] == "validation_error"
    assert results[4]["consent"]["channels"] == ["sms", "voice"]
    assert results[5]["created"] is False
    assert results[5]["consent"]["id"] == results[0]["consent"]["id"]


def test_bulk_of_10001_is_too_large(acme: Api, session: Session) -> None:
    resp = acme.post("/consents/bulk", {"consents": [consent_body()] * 10_001})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "too_large"
    assert session.scalar(select(func.count()).select_from(Consent)) == 0


def test_list_filter_and_other_orgs_cannot_see(acme: Api, shop: Api) -> None:
    acme.post("/consents", consent_body(external_id="l1"))
    acme.post("/consents", consent_body(phone=HOLDER2, external_id="l2"))
    listed = acme.get(f"/consents?phone={HOLDER2}").get_json()["consents"]
    assert [c["phone"] for c in listed] == [HOLDER2]
    assert acme.get("/consents?status=pending").get_json()["consents"][0]["status"] == "pending"
    assert acme.get("/consents?status=bogus").status_code == 422
    assert shop.get("/consents").get_json()["consents"] == []
    consent_id = listed[0]["id"]
    assert shop.get(f"/consents/{consent_id}").status_code == 403
    assert shop.post(f"/consents/{consent_id}/revoke").status_code == 403
    assert acme.get("/consents/999999").status_code == 404


def test_revoke_stops_contact_and_is_in_history(
    app: Flask, acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )
    consent = acme.post("/consents", consent_body()).get_json()
    assert acme.check(HOLDER)["reason"] == "consent"
    revoked = acme.post(f"/consents/{consent['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.get_json()["status"] == "revoked"
    assert [h["type"] for h in revoked.get_json()["history"]] == ["created", "revoked"]
    assert acme.check(HOLDER)["reason"] == "no_consent"
    assert acme.post(f"/consents/{consent['id']}/revoke").status_code == 409


def _otp_code(session: Session) -> str:
    body = session.scalars(
        select(SmsMessage.body)
        .where(SmsMessage.kind == "consent_otp")
        .order_by(SmsMessage.id.desc())
    ).first()  # type: ignore[union-attr]
    assert body is not None
    match = re.search(r"\b(\d{6})\b", body)
    assert match
    return match.group(1)


def test_otp_consent_confirms_with_the_code(acme: Api, session: Session) -> None:
    resp = acme.post(
        "/consent-requests",
        {
            "phone": HOLDER,
            "sender": "acme-cards",
            "channels": ["voice"],
            "wording": "Card offers by phone",
        },
    )
    assert resp.status_code == 201
    req = resp.get_json()
    code = _otp_code(session)
    confirmed = acme.post(f"/consent-requests/{req['id']}/confirm", {"code": code})
    assert confirmed.status_code == 201
    consent = confirmed.get_json()
    assert (consent["status"], consent["evidence"]["method"]) == ("active", "otp")
    assert acme.check(HOLDER, channel="voice")["reason"] == "consent"
    assert acme.post(f"/consent-requests/{req['id']}/confirm", {"code": code}).status_code == 409


def test_sixth_wrong_code_locks_even_the_right_one(acme: Api, session: Session, shop: Api) -> None:
    req = acme.post(
        "/consent-requests",
        {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "wording": "offers"},
    ).get_json()
    code = _otp_code(session)
    wrong = "000000" if code != "000000" else "111111"
    assert shop.post(f"/consent-requests/{req['id']}/confirm", {"code": code}).status_code == 403
    for _ in range(5):
        assert (
            acme.post(f"/consent-requests/{req['id']}/confirm", {"code": wrong}).status_code == 422
        )
    locked = acme.post(f"/consent-requests/{req['id']}/confirm", {"code": code})
    assert locked.status_code == 409
    assert "locked" in locked.get_json()["error"]["message"]
    assert acme.check(HOLDER)["reason"] == "no_consent"


def test_expired_code_is_refused(acme: Api, session: Session) -> None:
    from registry.consent.models import ConsentRequest

    req = acme.post(
        "/consent-requests",
        {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "wording": "offers"},
    ).get_json()
    row = session.get(ConsentRequest, req["id"])
    assert row is not None
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    resp = acme.post(f"/consent-requests/{req['id']}/confirm", {"code": _otp_code(session)})
    assert resp.status_code == 409
    assert "expired" in resp.get_json()["error"]["message"]


def test_code_is_stored_hashed(acme: Api, session: Session) -> None:
    from registry.consent.models import ConsentRequest

    req = acme.post(
        "/consent-requests",
        {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "wording": "offers"},
    ).get_json()
    row = session.get(ConsentRequest, req["id"])
    assert row is not None
    assert _otp_code(session) not in row.code_hash


def test_unused_world_fixture_is_real(world: World) -> None:
    assert set(world.keys) == {"acme", "shop", "carrier"}


def test_state_rederives_from_events(app: Flask, acme: Api, gateway: Api, session: Session) -> None:
    from registry.consent import derivation

    ids = [
        acme.post("/consents", consent_body(phone=p, external_id=p)).get_json()["id"]
        for p in (HOLDER, HOLDER2)
    ]
    registry_reply(gateway, "Y")
    acme.post(f"/consents/{ids[1]}/revoke")
    assert derivation.rederive(session) == []
    row = session.get(Consent, ids[0])
    assert row is not None
    row.status = "revoked"  # state edited behind the events' back
    session.commit()
    assert derivation.rederive(session) == [(ids[0], "status", "revoked", "active")]
    derivation.rederive(session, fix=True)
    session.commit()
    assert derivation.rederive(session) == []
    assert acme.check(HOLDER)["reason"] == "consent"
