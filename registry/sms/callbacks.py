"""The SMS clouds' callbacks as they come: replies and delivery reports in each cloud's own format.

Aliyun SMS (HTTP batch push: ``SmsUp`` replies and ``SmsReport`` reports, JSON
arrays), Tencent Cloud SMS (the reply callback, a JSON object, and the status
callback, a JSON array), Huawei Cloud SMS (form-encoded: the MO notification
and the status report sent to ``statusCallback``) and Twilio (form-encoded
webhooks: an incoming message, and the ``StatusCallback`` of a sent one).

Who is calling: Twilio signs every webhook (``X-Twilio-Signature``, HMAC-SHA1
over the URL it called and the sorted POST parameters, keyed by the account's
auth token). Aliyun's HTTP push, Tencent's callbacks and Huawei's reports are
not signed (Huawei's documentation: "the status report pushed by the platform
is not authenticated"), so the callback URL configured in each console carries
a secret token of the operator's choosing (``?token=``), compared in constant
time. Either way a request that does not prove itself records nothing.

This module only reads the formats into ``Reply`` and ``Report``: the replies
go through the one path of every gateway's replies
(``registry.complaints.inbound.receive``), the reports to
``registry.sms.services.record_delivery``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from registry.config import Settings
from registry.errors import Forbidden, MalformedPayload

log = logging.getLogger("registry.gateway")
PROVIDERS = ("aliyun", "tencent", "huawei", "twilio")
MAX_ITEMS = 1000  # reports or replies in one push (Aliyun and Tencent batch them)


@dataclass(frozen=True, slots=True)
class Reply:
    """A text a phone sent to the registry's number, as the cloud delivered it."""

    phone: str  # as the cloud wrote it; the reply path normalizes it to E.164
    text: str
    received_at: datetime | None


@dataclass(frozen=True, slots=True)
class Report:
    """A delivery report about one of the registry's texts.

    ``message_id`` is the registry's id, where the cloud passes back a field the
    sender set (Aliyun ``OutId``, Huawei ``extend``, the ``message`` parameter of
    Twilio's ``StatusCallback`` URL); ``provider_ref`` is the cloud's own id.
    """

    state: str  # one of registry.sms.services.DELIVERY_STATES
    detail: str
    at: datetime | None
    message_id: int | None
    provider_ref: str | None


def twilio_signature(auth_token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """Return Twilio's signature of a request: base64(HMAC-SHA1(token, URL + sorted k+v))."""
    data = url + "".join(k + v for k in sorted(params) for v in sorted(params[k]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def authenticate(
    provider: str,
    settings: Settings,
    *,
    url: str,
    form: Mapping[str, list[str]],
    token: str | None,
    signature: str | None,
) -> None:
    """Raise Forbidden unless the request proves it comes from ``provider`` for this registry."""
    if provider == "twilio":
        secret = settings.sms_twilio_auth_token
        if not secret:
            raise Forbidden("REGISTRY_SMS_TWILIO_AUTH_TOKEN is not set: no Twilio callbacks here")
        expected = twilio_signature(secret, url, form)
        if not signature or not hmac.compare_digest(expected, signature):
            raise Forbidden("the X-Twilio-Signature does not match this request")
        return
    configured = {
        "aliyun": settings.sms_aliyun_token,
        "tencent": settings.sms_tencent_token,
        "huawei": settings.sms_huawei_token,
    }[provider]
    if not configured:
        name = f"REGISTRY_SMS_{provider.upper()}_TOKEN"
        raise Forbidden(f"{name} is not set: no {provider} callbacks here")
    if not token or not hmac.compare_digest(configured.encode(), token.encode()):
        raise Forbidden("the callback URL's token is not this registry's")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload("the body is not JSON") from exc


def _items(body: bytes, *, single_ok: bool = False) -> list[dict[str, Any]]:
    """Return the JSON array of objects (or one object, where the cloud sends one)."""
    data = _json(body)
    if single_ok and isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(i, dict) for i in data):
        raise MalformedPayload("expected a JSON array of objects, as the cloud pushes them")
    if len(data) > MAX_ITEMS:
        raise MalformedPayload(f"at most {MAX_ITEMS} items in one push")
    return data


def _text(item: Mapping[str, Any], name: str, *, required: bool = True, limit: int = 1600) -> str:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing {name!r}", field=name)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(f"{name!r} must be a string", field=name)
    text = str(value)
    if len(text) > limit or "\x00" in text:
        raise MalformedPayload(f"{name!r} is not a text of at most {limit} characters", field=name)
    return text


def _one(
    form: Mapping[str, list[str]], name: str, *, required: bool = True, limit: int = 1600
) -> str:
    values = form.get(name) or []
    if len(values) > 1:
        raise MalformedPayload(f"{name!r} given more than once", field=name)
    return _text({name: values[0] if values else None}, name, required=required, limit=limit)


def _local_time(text: str, tz: ZoneInfo, *formats: str) -> datetime | None:
    """Return a cloud's wall-clock time (China time for the Chinese clouds) in UTC, or None."""
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.astimezone(UTC)
    return None


def _our_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 2**63 else None


CHINA = ZoneInfo("Asia/Shanghai")  # the Chinese clouds' times carry no zone: theirs


def _aliyun_replies(body: bytes, form: Mapping[str, list[str]]) -> list[Reply]:
    return [
        Reply(
            _text(i, "phone_number", limit=32),
            _text(i, "content", required=False),
            _local_time(
                _text(i, "send_time", required=False), CHINA, "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"
            ),
        )
        for i in _items(body)
    ]


def _aliyun_reports(body: bytes, form: Mapping[str, list[str]]) -> list[Report]:
    reports = []
    for i in _items(body):
        success = i.get("success")
        if not isinstance(success, bool):
            raise MalformedPayload("'success' must be true or false", field="success")
        _text(i, "phone_number", limit=32)
        reports.append(
            Report(
                "delivered" if success else "undelivered",
                " ".join(filter(None, (_text(i, "err_code", required=False, limit=64),
                                       _text(i, "err_msg", required=False, limit=120)))),
                _local_time(_text(i, "report_time", required=False), CHINA, "%Y-%m-%d %H:%M:%S"),
                _our_id(_text(i, "out_id", required=False, limit=64)),
                _text(i, "biz_id", required=False, limit=64) or None,
            )
        )  # fmt: skip
    return reports


def _tencent_replies(body: bytes, form: Mapping[str, list[str]]) -> list[Reply]:
    replies = []
    for i in _items(body, single_ok=True):
        code = _text(i, "nationcode", limit=4)
        if not code.isdigit():
            raise MalformedPayload("'nationcode' must be digits", field="nationcode")
        when = i.get("time")
        if isinstance(when, bool) or not isinstance(when, int | None):
            raise MalformedPayload("'time' must be a Unix time in seconds", field="time")
        at = datetime.fromtimestamp(when, UTC) if when and 0 < when < 2**33 else None
        replies.append(Reply(f"+{code}{_text(i, 'mobile', limit=20)}", _text(i, "text"), at))
    return replies


def _tencent_reports(body: bytes, form: Mapping[str, list[str]]) -> list[Report]:
    states = {"SUCCESS": "delivered", "FAIL": "undelivered"}
    reports = []
    for i in _items(body):
        status = _text(i, "report_status", limit=16)
        if status not in states:
            raise MalformedPayload("'report_status' must be SUCCESS or FAIL", field="report_status")
        _text(i, "mobile", limit=20)
        reports.append(
            Report(
                states[status],
                " ".join(filter(None, (_text(i, "errmsg", required=False, limit=64),
                                       _text(i, "description", required=False, limit=120)))),
                _local_time(_text(i, "user_receive_time", required=False), CHINA,
                            "%Y-%m-%d %H:%M:%S"),
                None,
                _text(i, "sid", limit=64),
            )
        )  # fmt: skip
    return reports


def _utc(text: str) -> datetime | None:
    """Return Huawei's UTC time (yyyy-MM-dd'T'HH:mm:ss'Z'), None if absent or another shape."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _huawei_replies(body: bytes, form: Mapping[str, list[str]]) -> list[Reply]:
    at = _utc(_one(form, "createTime", required=False))
    return [Reply(_one(form, "from", limit=32), _one(form, "body", required=False), at)]


HUAWEI_STATES = {
    "DELIVRD": "delivered", "ACCEPTD": "accepted", "UNDELIV": "undelivered",
    "EXPIRED": "undelivered", "DELETED": "undelivered", "UNKNOWN": "undelivered",
    "REJECTD": "rejected",
}  # fmt: skip


def _huawei_reports(body: bytes, form: Mapping[str, list[str]]) -> list[Report]:
    status = _one(form, "status")
    # Codes beyond the enumeration (E200018...) are the platform's refusals.
    state = HUAWEI_STATES.get(status, "rejected")
    at = _utc(_one(form, "updateTime", required=False))
    return [
        Report(state, status, at, _our_id(_one(form, "extend", required=False)),
               _one(form, "smsMsgId"))
    ]  # fmt: skip


def _twilio_replies(body: bytes, form: Mapping[str, list[str]]) -> list[Reply]:
    _one(form, "MessageSid")
    return [Reply(_one(form, "From"), _one(form, "Body", required=False), None)]


TWILIO_STATES = {
    "delivered": "delivered", "read": "delivered", "undelivered": "undelivered",
    "failed": "rejected", "sent": "accepted", "queued": "queued", "accepted": "queued",
    "sending": "queued", "scheduled": "queued",
}  # fmt: skip


def _twilio_reports(body: bytes, form: Mapping[str, list[str]]) -> list[Report]:
    status = _one(form, "MessageStatus")
    if status not in TWILIO_STATES:
        raise MalformedPayload(f"unknown MessageStatus {status!r}", field="MessageStatus")
    detail = " ".join(filter(None, (status, _one(form, "ErrorCode", required=False))))
    # Our id rides in the StatusCallback URL the sender set (…/twilio/dlr?message=<id>),
    # which the signature covers: the view passes it in as the "message" field.
    return [
        Report(TWILIO_STATES[status], detail, None,
               _our_id(_one(form, "message", required=False)), _one(form, "MessageSid"))
    ]  # fmt: skip


Parser = Callable[[bytes, Mapping[str, list[str]]], list[Any]]
REPLIES: dict[str, Parser] = {
    "aliyun": _aliyun_replies, "tencent": _tencent_replies,
    "huawei": _huawei_replies, "twilio": _twilio_replies,
}  # fmt: skip
REPORTS: dict[str, Parser] = {
    "aliyun": _aliyun_reports, "tencent": _tencent_reports,
    "huawei": _huawei_reports, "twilio": _twilio_reports,
}  # fmt: skip
FORM = ("huawei", "twilio")  # form-encoded; the others push JSON


def parse_replies(provider: str, body: bytes, form: Mapping[str, list[str]]) -> list[Reply]:
    """Read a reply callback in ``provider``'s format; MalformedPayload if it is not that."""
    replies: list[Reply] = REPLIES[provider](body, form)
    return replies


def parse_reports(provider: str, body: bytes, form: Mapping[str, list[str]]) -> list[Report]:
    """Read a delivery-report callback in ``provider``'s format; MalformedPayload if not."""
    reports: list[Report] = REPORTS[provider](body, form)
    return reports


def acknowledgement(provider: str, replies: list[str] | None = None) -> tuple[str, str]:
    """Return the body and media type each cloud expects back, so that it does not retry.

    For Twilio the answer to an incoming message is TwiML, which carries the
    registry's reply back to the phone; the other clouds only take a receipt,
    so their replies go out through the outbox.
    """
    if provider == "aliyun":
        return json.dumps({"code": 0, "msg": "接收成功"}, ensure_ascii=False), "application/json"
    if provider == "tencent":
        return json.dumps({"result": 0, "errmsg": "OK"}), "application/json"
    if provider == "twilio":
        # TwiML is XML: the text content needs &, < and > escaped (html.escape does just that).
        messages = "".join(
            f"<Message>{html.escape(text, quote=False)}</Message>" for text in replies or []
        )
        xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{messages}</Response>'
        return xml, "text/xml"
    return json.dumps({"result": "ok"}), "application/json"
