"""The SMS clouds' callbacks and Kannel's posts, in their own formats (issue 18).

Each payload below is shaped as the cloud documents it (field names, types,
batching), and each signature is computed as the cloud documents it: Twilio's
HMAC-SHA1 over the URL and the sorted POST parameters, checked first against
the example in Twilio's documentation. A request that does not prove itself
records nothing (403); one that is not the cloud's format is a 400.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.consent.models import Consent, OptOut
from registry.sms import services as sms
from registry.sms.callbacks import twilio_signature
from registry.sms.models import SmsMessage
from tests.api.test_holders_voice import consent
from tests.api.test_openapi_statuses import Observed
from tests.conftest import Api
from tests.factories import HOLDER

TOKENS = {"aliyun": "ali-secret-1", "tencent": "tc-secret-2", "huawei": "hw-secret-3"}
TWILIO_TOKEN = "twilio-auth-token-4"
LOCAL = HOLDER.removeprefix("+86")  # the Chinese clouds write CN numbers without +86


@pytest.fixture(autouse=True)
def _secrets(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = replace(
        app.config["REGISTRY"],
        consent_pending_days=3650,  # checks ask at NOON 2030: keep pending consents pending
        sms_twilio_auth_token=TWILIO_TOKEN,
        sms_aliyun_token=TOKENS["aliyun"],
        sms_tencent_token=TOKENS["tencent"],
        sms_huawei_token=TOKENS["huawei"],
    )
    monkeypatch.setitem(app.config, "REGISTRY", settings)


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # https://www.twilio.com/docs/usage/security#validating-requests (auth token 12345)
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": ["CA1234567890ABCDE"], "Caller": ["+12349013030"], "Digits": ["1234"],
              "From": ["+12349013030"], "To": ["+18005551212"]}  # fmt: skip
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def reply_payload(provider: str, text: str, phone: str = LOCAL) -> tuple[str, Any]:
    """Return (media type, body) of a reply as ``provider`` pushes it."""
    if provider == "aliyun":  # SmsUp, HTTP batch push: a JSON array
        return "application/json", json.dumps([{
            "phone_number": phone, "send_time": "2026-12-01 10:00:00", "content": text,
            "sign_name": "安宁", "dest_code": "0000", "sequence_id": 1234567890}])  # fmt: skip
    if provider == "tencent":  # the reply callback: one JSON object
        return "application/json", json.dumps({
            "extend": "", "mobile": phone, "nationcode": "86", "sign": "安宁",
            "text": text, "time": 1796119200})  # fmt: skip
    if provider == "huawei":  # the MO notification: form fields
        return "application/x-www-form-urlencoded", {
            "from": f"+86{phone}", "to": "10690000", "body": text,
            "smsMsgId": "a1b2c3d4-0001", "createTime": "2026-12-01T02:00:00Z"}  # fmt: skip
    return "application/x-www-form-urlencoded", {  # Twilio's incoming-message webhook
        "MessageSid": "SM0123456789abcdef0123456789abcdef", "AccountSid": "AC0123",
        "From": f"+86{phone}", "To": "+15005550006", "Body": text, "NumMedia": "0"}  # fmt: skip


def post(client: FlaskClient, provider: str, kind: str, media: str, data: Any,
         query: dict[str, str] | None = None, signature: str | None = None) -> Any:  # fmt: skip
    """POST a callback, with the URL token or the Twilio signature unless one is given."""
    query = dict(query or {})
    if provider != "twilio":
        query.setdefault("token", TOKENS[provider])
    path = f"/api/v1/gateway/{provider}/{kind}" + (f"?{urlencode(query)}" if query else "")
    headers = {}
    if provider == "twilio":
        form = {k: [v] for k, v in data.items()}
        headers["X-Twilio-Signature"] = signature or twilio_signature(
            TWILIO_TOKEN, f"http://localhost{path}", form
        )
    if media == "application/json":
        return client.post(path, data=data, content_type=media, headers=headers)
    return client.post(path, data=data, headers=headers)


def opt_outs(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OptOut)) or 0


@pytest.mark.parametrize("provider", ["aliyun", "tencent", "huawei", "twilio"])
def test_a_td_through_each_cloud_refuses_the_pending_request(
    provider: str, client: FlaskClient, acme: Api, session: Session
) -> None:
    made = consent(acme)
    resp = post(client, provider, "inbound", *reply_payload(provider, "TD"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert session.get(Consent, made["id"]).status != "active"  # type: ignore[union-attr]
    if provider == "twilio":  # TwiML: Twilio texts the registry's answer back itself
        assert resp.mimetype == "text/xml"
        assert "<Response><Message>" in resp.get_data(as_text=True)
    else:  # each cloud's own receipt; the answer goes out through the outbox
        ack = resp.get_json()
        assert ack in ({"code": 0, "msg": "接收成功"}, {"result": 0, "errmsg": "OK"},
                       {"result": "ok"})  # fmt: skip
        kinds = session.scalars(select(SmsMessage.kind).where(SmsMessage.phone == HOLDER)).all()
        assert "reply" in kinds


@pytest.mark.parametrize("provider", ["aliyun", "tencent", "huawei", "twilio"])
def test_a_wrong_signature_or_token_records_nothing(
    provider: str, client: FlaskClient, acme: Api, session: Session
) -> None:
    consent(acme)
    media, data = reply_payload(provider, "TD")
    if provider == "twilio":
        resp = post(client, provider, "inbound", media, data, signature="bm90IGEgc2lnbmF0dXJl")
    else:
        resp = post(client, provider, "inbound", media, data, query={"token": "guessed"})
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    assert opt_outs(session) == 0


def test_a_twilio_body_altered_after_signing_is_refused(client: FlaskClient, acme: Api) -> None:
    consent(acme)
    _media, data = reply_payload("twilio", "Y")
    path = "/api/v1/gateway/twilio/inbound"
    signed = twilio_signature(TWILIO_TOKEN, f"http://localhost{path}",
                              {k: [v] for k, v in data.items()})  # fmt: skip
    resp = client.post(path, data={**data, "Body": "TD"}, headers={"X-Twilio-Signature": signed})
    assert resp.status_code == 403
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_a_cloud_that_is_not_configured_takes_no_callbacks(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    unset = replace(app.config["REGISTRY"], sms_aliyun_token=None)
    monkeypatch.setitem(app.config, "REGISTRY", unset)
    resp = post(client, "aliyun", "inbound", *reply_payload("aliyun", "TD"))
    assert resp.status_code == 403
    assert "REGISTRY_SMS_ALIYUN_TOKEN" in resp.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("provider", "media", "data"),
    [
        ("aliyun", "application/json", "{not json"),
        ("aliyun", "application/json", json.dumps({"phone_number": LOCAL})),  # not an array
        ("aliyun", "application/json", json.dumps([{"content": "TD"}])),  # no phone_number
        ("tencent", "application/json", json.dumps({"mobile": LOCAL, "text": "TD"})),
        ("tencent", "application/json", json.dumps([{"mobile": 5, "nationcode": "86"}])),
        ("huawei", "application/x-www-form-urlencoded", {"body": "TD"}),  # no from
        ("twilio", "application/x-www-form-urlencoded", {"From": "+8613800138000"}),
    ],
)
def test_a_malformed_callback_is_a_400_and_records_nothing(
    provider: str, media: str, data: Any, client: FlaskClient, acme: Api, session: Session
) -> None:
    consent(acme)
    resp = post(client, provider, "inbound", media, data)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "bad_request"
    assert opt_outs(session) == 0


def test_an_unparseable_number_from_a_cloud_is_a_clear_422(client: FlaskClient) -> None:
    resp = post(client, "tencent", "inbound", *reply_payload("tencent", "TD", phone="12"))
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "invalid_phone"


def test_an_aliyun_push_of_several_replies_acts_on_each(
    client: FlaskClient, acme: Api, session: Session
) -> None:
    consent(acme)
    items = [{"phone_number": LOCAL, "send_time": "2026-12-01 10:00:00", "content": text,
              "sign_name": "安宁", "dest_code": "0000", "sequence_id": n}
             for n, text in enumerate(["HELP", "TD"])]  # fmt: skip
    resp = post(client, "aliyun", "inbound", "application/json", json.dumps(items))
    assert resp.status_code == 200
    assert acme.check(HOLDER)["reason"] == "opted_out"


# --- delivery reports ------------------------------------------------------------


def outbound(session: Session, provider_ref: str | None = None) -> SmsMessage:
    message = sms.send(session, HOLDER, "您的验证码 123456", "login_code")
    message.provider_ref = provider_ref
    session.commit()
    return message


def delivery(session: Session, message: SmsMessage) -> tuple[str | None, str | None]:
    session.expire_all()
    row = session.get(SmsMessage, message.id)
    assert row is not None
    return row.delivery, row.delivery_detail


def test_an_aliyun_report_is_recorded_on_the_message_its_out_id_names(
    client: FlaskClient, session: Session
) -> None:
    message = outbound(session)
    report = [{"phone_number": LOCAL, "send_time": "2026-12-01 10:00:00",
               "report_time": "2026-12-01 10:00:05", "success": False, "err_code": "MK:0001",
               "err_msg": "用户关机", "sms_size": "1", "biz_id": "900619746936498440^0",
               "out_id": str(message.id)}]  # fmt: skip
    resp = post(client, "aliyun", "dlr", "application/json", json.dumps(report))
    assert resp.status_code == 200
    assert delivery(session, message) == ("undelivered", "MK:0001 用户关机")


def test_a_tencent_report_is_recorded_by_its_serial_number(
    client: FlaskClient, session: Session
) -> None:
    message = outbound(session, provider_ref="2019:538884*********")
    report = [{"user_receive_time": "2026-12-01 10:00:04", "nationcode": "86", "mobile": LOCAL,
               "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功",
               "sid": "2019:538884*********"}]  # fmt: skip
    resp = post(client, "tencent", "dlr", "application/json", json.dumps(report))
    assert resp.status_code == 200
    assert resp.get_json() == {"result": 0, "errmsg": "OK"}
    assert delivery(session, message)[0] == "delivered"


def test_a_huawei_report_is_recorded_by_its_extend_field(
    client: FlaskClient, session: Session
) -> None:
    message = outbound(session)
    form = {"smsMsgId": "2ea20735-f856-4376-afbf-570bd70a46ee_11840135", "total": "1",
            "sequence": "1", "status": "DELIVRD", "source": "2",
            "updateTime": "2026-12-01T02:00:05Z", "extend": str(message.id), "to": HOLDER}  # fmt: skip
    resp = post(client, "huawei", "dlr", "application/x-www-form-urlencoded", form)
    assert resp.status_code == 200
    assert delivery(session, message) == ("delivered", "DELIVRD")


def test_a_twilio_status_callback_is_recorded_and_a_late_sent_does_not_undo_delivered(
    client: FlaskClient, session: Session
) -> None:
    message = outbound(session)
    query = {"message": str(message.id)}
    for status in ("delivered", "sent"):  # Twilio does not promise the order
        form = {"MessageSid": "SM0123", "MessageStatus": status, "To": HOLDER,
                "From": "+15005550006", "AccountSid": "AC0123"}  # fmt: skip
        resp = post(client, "twilio", "dlr", "application/x-www-form-urlencoded", form, query)
        assert resp.status_code == 200
    assert delivery(session, message)[0] == "delivered"


def test_a_report_for_a_message_never_sent_is_acknowledged_and_logged(
    client: FlaskClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    report = [{"user_receive_time": "2026-12-01 10:00:04", "nationcode": "86", "mobile": LOCAL,
               "report_status": "FAIL", "errmsg": "MK:0001", "description": "x",
               "sid": "unknown-serial"}]  # fmt: skip
    resp = post(client, "tencent", "dlr", "application/json", json.dumps(report))
    assert resp.status_code == 200  # else the cloud retries it for ever
    assert "did not send" in caplog.text


# --- Kannel --------------------------------------------------------------------


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"kannel:{key}".encode()).decode()}


def kannel_post(client: FlaskClient, key: str, text: str, to: str = "10690000",
                charset: str = "UTF-8") -> Any:  # fmt: skip
    """POST a reply as Kannel's sms-service post-url does (send-sender = true)."""
    return client.post(
        "/api/v1/gateway/kannel/inbound",
        data=text.encode(charset),
        headers={**basic(key), "Content-Type": f'text/plain; charset="{charset}"',
                 "X-Kannel-From": HOLDER, "X-Kannel-To": to, "X-Kannel-SMSC": "fake",
                 "X-Kannel-Time": "2026-12-01 10:00:00"},
    )  # fmt: skip


def test_kannels_post_of_退订_refuses_and_queues_the_answer(
    client: FlaskClient, acme: Api, gateway: Api, session: Session
) -> None:
    consent(acme)
    resp = kannel_post(client, gateway.key, "退订", charset="UTF-16BE")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["action"] == "opt_out"
    assert acme.check(HOLDER)["reason"] == "opted_out"
    reply = session.scalars(select(SmsMessage).where(SmsMessage.kind == "reply")).one()
    assert reply.body == resp.get_json()["reply"]


def test_kannel_with_a_senders_key_is_refused(client: FlaskClient, acme: Api) -> None:
    consent(acme)
    resp = kannel_post(client, acme.key, "Y")  # the sender may not speak for the holder
    assert resp.status_code == 403
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_a_gateway_key_as_basic_auth_is_good_only_on_the_gateway(
    client: FlaskClient, gateway: Api
) -> None:
    resp = client.get("/api/v1/senders", headers=basic(gateway.key))
    assert resp.status_code == 401


def test_a_reply_kannel_brings_for_another_port_is_refused_and_logged(
    client: FlaskClient, acme: Api, gateway: Api, session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    consent(acme)
    resp = kannel_post(client, gateway.key, "TD", to="10690001")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "unknown_address"
    assert "not the registry's number" in caplog.text
    assert opt_outs(session) == 0


def test_kannels_post_without_its_headers_is_a_400(client: FlaskClient, gateway: Api) -> None:
    resp = client.post("/api/v1/gateway/kannel/inbound", data=b"TD", headers=basic(gateway.key))
    assert resp.status_code == 400
    assert "send-sender" in resp.get_json()["error"]["message"]


def test_kannels_reports_are_recorded_on_the_signed_message_only(
    client: FlaskClient, app: Flask, session: Session
) -> None:
    message = outbound(session)
    token = sms.dlr_signer(app.config["REGISTRY"]).dumps(message.id)
    dlr = "/api/v1/gateway/kannel/dlr"
    assert client.get(f"{dlr}?m={token}&type=1&answer=ACK%2F").status_code == 200
    assert client.get(f"{dlr}?m={token}&type=8&answer=ACK%2F").status_code == 200  # late
    assert delivery(session, message)[0] == "delivered"
    forged = sms.dlr_signer(replace(app.config["REGISTRY"], secret_key="x" * 32)).dumps(message.id)
    resp = client.get(f"{dlr}?m={forged}&type=2")
    assert resp.status_code == 403
    assert client.get(f"{dlr}?m={token}&type=3").status_code == 400
    assert delivery(session, message)[0] == "delivered"


def test_every_status_provoked_here_is_documented(
    client: FlaskClient, app: Flask, acme: Api, gateway: Api, session: Session
) -> None:
    observed = Observed(client.get("/api/v1/openapi.json").get_json()["paths"])
    consent(acme)
    inbound = "/gateway/kannel/inbound"
    observed(kannel_post(client, gateway.key, "HELP"), "POST", inbound, 200)
    observed(kannel_post(client, acme.key, "HELP"), "POST", inbound, 403)
    observed(kannel_post(client, gateway.key, "TD", to="1"), "POST", inbound, 422)
    bare = client.post(f"/api/v1{inbound}", data=b"TD", headers=basic(gateway.key))
    observed(bare, "POST", inbound, 400)
    message = outbound(session)
    token = sms.dlr_signer(app.config["REGISTRY"]).dumps(message.id)
    dlr = "/gateway/kannel/dlr"
    observed(client.get(f"/api/v1{dlr}?m={token}&type=8"), "GET", dlr, 200)
    observed(client.get(f"/api/v1{dlr}?m={token}&type=9"), "GET", dlr, 400)
    observed(client.get(f"/api/v1{dlr}?m=forged&type=8"), "GET", dlr, 403)
    for provider in ("aliyun", "tencent", "huawei", "twilio"):
        media, data = reply_payload(provider, "HELP")
        path = f"/gateway/{provider}/inbound"
        observed(post(client, provider, "inbound", media, data), "POST", path, 200)
        bad = "{" if media == "application/json" else {"nothing": "here"}
        observed(post(client, provider, "inbound", media, bad), "POST", path, 400)
        wrong = post(client, provider, "inbound", media, data, query={"token": "x"},
                     signature="eA==")  # fmt: skip
        observed(wrong, "POST", path, 403)
