"""The gateway endpoints: replies to the registry's own number, the holder's own voice.

``/gateway/inbound-sms`` takes a reply as JSON from an organization with role
``gateway``, whose key is good for nothing else (``registry/api/__init__.py``,
``GATEWAY``): the channel is trusted because no sender can write on it.
``/gateway/kannel/inbound`` takes the same reply as Kannel's ``sms-service``
posts it (``post-url``: the text as the body, the numbers in ``X-Kannel-*``
headers, the gateway key as the password of HTTP basic auth, which Kannel
sends for the user:password of the URL). ``/gateway/kannel/dlr`` takes
Kannel's delivery reports, authenticated by the signed message id the registry
put in the ``dlr-url``. ``/gateway/<cloud>/inbound`` and ``/dlr`` take the SMS
clouds' callbacks in their own formats (``registry/sms/callbacks.py``). Every
reply goes through ``registry.consent.gateway.receive``.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Response, jsonify, request
from pydantic import BaseModel

from registry.api import body, bp, require_role, write_limit
from registry.api.openapi import ERRORS, route
from registry.api.optouts import InboundIn
from registry.complaints.inbound import receive
from registry.config import current_settings
from registry.consent.gateway import RegistryReply
from registry.db import get_session
from registry.errors import Forbidden, MalformedPayload
from registry.extensions import limiter
from registry.sms import callbacks
from registry.sms import services as sms
from registry.timeutil import to_utc, utcnow
from registry.tokens import InvalidToken


class GatewayInboundOut(BaseModel):
    """What the holder's reply did, and the text to send back from the registry's number.

    ``sender`` and ``consents`` name what was confirmed, refused or created;
    both are empty when the reply named nothing the registry could act on
    (several requests waiting, an unknown reference): ``reply`` then tells the
    holder what to send. ``complaint`` (action ``complaint``) is the reference
    of the complaint a forwarded unwanted text filed (docs/complaints.md).
    """

    action: Literal["confirm", "opt_in", "opt_out", "opt_out_all", "help", "none", "complaint"]
    sender: str | None = None
    consents: list[int] = []
    complaint: str | None = None
    reply: str


class DeliveryOut(BaseModel):
    """What a delivery report recorded: the message's state, and whether the message was known."""

    message: int | None
    delivery: Literal["delivered", "undelivered", "rejected", "accepted", "queued"]
    recorded: bool


def _render(outcome: RegistryReply) -> Response:
    return jsonify(
        {
            "action": outcome.action,
            "sender": outcome.sender,
            "consents": list(outcome.consents),
            "reply": outcome.reply,
            **({"complaint": outcome.complaint} if outcome.complaint is not None else {}),
        }
    )


@route(
    bp,
    "/gateway/inbound-sms",
    "POST",
    summary="Bring a reply sent to the registry's own number (role gateway)",
    tag="gateway",
    body=InboundIn,
    response=GatewayInboundOut,
)
@limiter.limit(write_limit)
def gateway_inbound_sms() -> Any:
    """Act for the holder on a text to the registry's number: a forwarded text, Y, START, TD."""
    require_role("gateway")
    data = body(InboundIn)
    cfg = current_settings()
    now = utcnow()
    received = to_utc(data.received_at, cfg.tz) if data.received_at else now
    session = get_session()
    outcome = receive(session, cfg, data.from_, data.to, data.text, received, now)
    session.commit()
    return _render(outcome)


KANNEL_TEXT = {"type": "string", "maxLength": 1600, "description": "the reply's text"}


@route(
    bp,
    "/gateway/kannel/inbound",
    "POST",
    summary="Bring a reply to the registry's number as Kannel's sms-service post-url sends it",
    tag="gateway",
    body_schema=("text/plain", KANNEL_TEXT),
    response=GatewayInboundOut,
    security="basic",
    headers={"X-Kannel-From": "the phone that sent the reply (send-sender = true)",
             "X-Kannel-To": "the number it was sent to: the registry's own"},
)  # fmt: skip
@limiter.limit(write_limit)
def gateway_kannel_inbound() -> Any:
    """Act on a reply Kannel posts (text body, X-Kannel-From/To); queue the answer to the phone."""
    require_role("gateway")
    phone = request.headers.get("X-Kannel-From", "")
    to = request.headers.get("X-Kannel-To", "")
    if not phone or not to or len(phone) > 64 or len(to) > 32:
        raise MalformedPayload(
            "Kannel sends X-Kannel-From and X-Kannel-To: set send-sender = true in the sms-service"
        )
    raw = request.get_data(cache=False)
    charset = request.mimetype_params.get("charset", "utf-8")
    try:
        text = raw.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"the body is not text in {charset!r}") from exc
    if len(text) > 1600 or "\x00" in text:
        raise MalformedPayload("the text is over 1600 characters or holds NUL", field="text")
    cfg = current_settings()
    now = utcnow()
    session = get_session()
    outcome = receive(session, cfg, phone, to, text, now, now, send_reply=True)
    session.commit()
    return _render(outcome)


@route(
    bp,
    "/gateway/kannel/dlr",
    "GET",
    summary="Record Kannel's delivery report on the registry's text (the dlr-url it was given)",
    tag="gateway",
    response=DeliveryOut,
    query={"m": "string", "type": "integer", "answer": "string"},
    auth=False,
    responses={400: ERRORS[400], 403: ERRORS[403]},
)
@limiter.limit(write_limit)
def gateway_kannel_dlr() -> Any:
    """Record the state Kannel reports (%d) with the SMSC's answer (%A) on the signed message."""
    cfg = current_settings()
    try:
        message_id = sms.dlr_signer(cfg).loads(request.args.get("m", ""))
    except InvalidToken as exc:
        raise Forbidden("m is not a message id this registry signed") from exc
    kind = request.args.get("type", "")
    state = sms.KANNEL_DLR.get(int(kind)) if kind.isdigit() and len(kind) < 4 else None
    if state is None or not isinstance(message_id, int):
        raise MalformedPayload("type must be one of Kannel's report types 1, 2, 4, 8, 16")
    session = get_session()
    answer = request.args.get("answer", "")[:200]
    recorded = sms.record_delivery(
        session, state=state, detail=answer, at=utcnow(), message_id=message_id
    )
    session.commit()
    return jsonify({"message": message_id, "delivery": state, "recorded": recorded})


def _form() -> dict[str, list[str]]:
    return {k: request.form.getlist(k) for k in request.form}


def _authenticate(provider: str) -> dict[str, list[str]]:
    """Check the cloud's signature or the URL's token; return the POST form (Twilio, Huawei)."""
    form = _form() if provider in callbacks.FORM else {}
    callbacks.authenticate(
        provider,
        current_settings(),
        url=request.url,
        form=form,
        token=request.args.get("token"),
        signature=request.headers.get("X-Twilio-Signature"),
    )
    return form


def _acknowledge(provider: str, replies: list[str] | None = None) -> Response:
    text, media = callbacks.acknowledgement(provider, replies)
    return Response(text, mimetype=media)


def _cloud_inbound(provider: str) -> Any:
    form = _authenticate(provider)
    replies = callbacks.parse_replies(provider, request.get_data(cache=False), form)
    cfg = current_settings()
    now = utcnow()
    session = get_session()
    # Twilio carries the answers back in its TwiML; the other clouds only take a receipt.
    carried = provider == "twilio"
    answers = [
        receive(session, cfg, r.phone, None, r.text, r.received_at or now, now,
                send_reply=not carried).reply
        for r in replies
    ]  # fmt: skip
    session.commit()
    return _acknowledge(provider, answers if carried else None)


def _cloud_dlr(provider: str) -> Any:
    form = _authenticate(provider)
    if provider == "twilio":  # the registry's id, in the StatusCallback URL it was sent with
        form = {**form, "message": request.args.getlist("message")}
    reports = callbacks.parse_reports(provider, request.get_data(cache=False), form)
    session = get_session()
    now = utcnow()
    for report in reports:
        found = sms.record_delivery(
            session, state=report.state, detail=report.detail, at=report.at or now,
            message_id=report.message_id, provider_ref=report.provider_ref,
        )  # fmt: skip
        if not found:
            callbacks.log.warning(
                "%s delivery report for a message this registry did not send (%s, %s)",
                provider, report.message_id, report.provider_ref,
            )  # fmt: skip
    session.commit()
    return _acknowledge(provider)


STRING = "string"  # the OpenAPI type of the token query parameter
CLOUD_DOC = {
    "aliyun": ("Aliyun SMS HTTP batch push", "application/json", "JSON array (SmsUp / SmsReport)"),
    "tencent": ("Tencent Cloud SMS callback", "application/json", "JSON (reply object / status array)"),
    "huawei": ("Huawei Cloud SMS notification", "application/x-www-form-urlencoded", "form fields"),
    "twilio": ("Twilio webhook", "application/x-www-form-urlencoded", "form fields"),
}  # fmt: skip


def _register(provider: str) -> None:
    """Register the reply and the report callbacks of one cloud."""
    what, media, shape = CLOUD_DOC[provider]
    schema = {"type": "object" if "form" in media else "array", "description": shape}
    extra = {400: ERRORS[400], 403: ERRORS[403]}
    query = {} if provider == "twilio" else {"token": STRING}

    def inbound() -> Any:
        return _cloud_inbound(provider)

    def dlr() -> Any:
        return _cloud_dlr(provider)

    for view, kind, summary in (
        (inbound, "inbound", f"Bring replies to the registry's number as the {what} sends them"),
        (dlr, "dlr", f"Record delivery reports as the {what} sends them"),
    ):
        view.__name__ = view.__qualname__ = f"gateway_{provider}_{kind}"
        view.__doc__ = summary
        dlr_query = {"message": "integer"} if provider == "twilio" and kind == "dlr" else {}
        route(
            bp, f"/gateway/{provider}/{kind}", "POST", summary=summary, tag="gateway",
            body_schema=(media, schema), auth=False, responses=extra,
            query={**query, **dlr_query},
        )(limiter.limit(write_limit)(view))  # fmt: skip


for _provider in callbacks.PROVIDERS:
    _register(_provider)
