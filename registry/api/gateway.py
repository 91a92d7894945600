"""``/gateway/inbound-sms``: replies to the registry's own number, the holder's own voice.

Only an organization with role ``gateway`` may post here, and its key is good
for nothing else (``registry/api/__init__.py``, ``GATEWAY``): the channel is
trusted because no sender can write on it.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify
from pydantic import BaseModel

from registry import phones
from registry.api import body, bp, require_role, settings, write_limit
from registry.api.openapi import route
from registry.api.optouts import InboundIn
from registry.complaints import inbound
from registry.db import get_session
from registry.errors import InvalidPhoneError, UnknownAddress
from registry.extensions import limiter
from registry.timeutil import to_utc, utcnow


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
    cfg = settings()
    if data.to.replace(" ", "").replace("-", "") != cfg.sms_number:
        raise UnknownAddress(
            f"the registry's number is {cfg.sms_number}; replies to senders go to /inbound-sms",
            field="to",
        )
    session = get_session()
    try:
        phone = phones.to_e164(data.from_, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="from") from exc
    now = utcnow()
    received = to_utc(data.received_at, cfg.tz) if data.received_at else now
    outcome = inbound.handle(session, cfg, phone, data.text, received, now)
    session.commit()
    out: dict[str, Any] = {
        "action": outcome.action,
        "sender": outcome.sender,
        "consents": list(outcome.consents),
        "reply": outcome.reply,
    }
    if outcome.complaint is not None:
        out["complaint"] = outcome.complaint
    return jsonify(out)
