"""``/optouts`` and ``/inbound-sms``: refusals, effective at once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify
from pydantic import BaseModel, Field

from registry import phones
from registry.api import actor_for, api_key, body, bp, caller, write_limit
from registry.api.openapi import route
from registry.api.schemas import Channel, Phone, SenderCode, Strict, Time
from registry.config import current_settings
from registry.consent import optouts, replies
from registry.consent.replies import classify
from registry.db import get_session
from registry.errors import InvalidPhoneError, ValidationFailed
from registry.extensions import limiter
from registry.senders.services import optout_reach, resolve_sender, sender_by_address
from registry.timeutil import iso, to_utc, utcnow


class OptOutIn(Strict):
    """A refusal the sender received (call, SMS, app, letter...)."""

    phone: Phone
    sender: SenderCode
    channels: Annotated[list[Channel], Field(min_length=1, max_length=2)]
    source: Annotated[str, Field(min_length=1, max_length=32, examples=["call"])]
    received_at: Time | None = None
    text: Annotated[str, Field(max_length=1000)] | None = None


class OptOutOut(BaseModel):
    """The recorded opt-out."""

    id: int
    phone: str
    sender: str
    channels: list[str]
    source: str
    received_at: str
    created_at: str


class InboundIn(Strict):
    """A holder's SMS reply to one of a sender's addresses."""

    from_: Annotated[str, Field(alias="from", min_length=1, max_length=64)]
    to: Annotated[str, Field(min_length=1, max_length=32)]
    text: Annotated[str, Field(max_length=1600)]
    received_at: Time | None = None


class InboundOut(BaseModel):
    """What the reply did, and the text to send back to the holder.

    Through a sender's port only refusals act: ``opt_out`` (this sender) and
    ``opt_out_all`` (every sender of its organization, never global
    do-not-disturb). A "Y" or "START" answers ``claim_recorded``: kept for the
    holder and the regulator to see, activating nothing; ``claimed`` says which
    (``confirm`` or ``opt_in``), and ``reply`` tells the holder how to confirm
    through the registry's own number.
    """

    action: Literal["opt_out", "opt_out_all", "claim_recorded", "help", "none"]
    sender: str
    reply: str
    claimed: Literal["confirm", "opt_in"] | None = None
    opted_out: Annotated[
        list[str], Field(description="codes of the senders this reply opted the number out of")
    ] = []


def _phone(raw: str, field: str) -> str:
    try:
        return phones.to_e164(raw, current_settings().default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field=field) from exc


@route(
    bp,
    "/optouts",
    "POST",
    summary="Record an opt-out",
    tag="optouts",
    body=OptOutIn,
    response=OptOutOut,
    status=201,
)
@limiter.limit(write_limit)
def create_optout() -> Any:
    """Record a refusal; every check after this answers opted_out."""
    data = body(OptOutIn)
    cfg = current_settings()
    session = get_session()
    phone = _phone(data.phone, "phone")
    received = to_utc(data.received_at, cfg.tz) if data.received_at else None
    optout, sender = optouts.record_reported_optout(
        session, caller(), api_key(), data.sender, phone, list(data.channels), data.source,
        received, data.text,
    )  # fmt: skip
    session.commit()
    return jsonify(
        {
            "id": optout.id,
            "phone": phone,
            "sender": sender.code,
            "channels": optout.channels.split(","),
            "source": optout.source,
            "received_at": iso(optout.received_at),
            "created_at": iso(optout.created_at),
        }
    ), 201


@route(
    bp,
    "/inbound-sms",
    "POST",
    summary="Forward a holder's SMS reply (refusals act; a Y or START is recorded as a claim)",
    tag="optouts",
    body=InboundIn,
    response=InboundOut,
)
@limiter.limit(write_limit)
def inbound_sms() -> Any:
    """Read a reply to the sender behind ``to``: act on refusals, record a Y or START as a claim."""
    data = body(InboundIn)
    cfg = current_settings()
    session = get_session()
    phone = _phone(data.from_, "from")
    if data.to.replace(" ", "").replace("-", "") == cfg.sms_number:
        raise ValidationFailed(
            "that is the registry's own number: replies to it come through its gateway",
            field="to",
        )
    now = utcnow()
    owner = sender_by_address(session, data.to, now)
    # An agent acts on a keyword only within its scopes: a refusal needs
    # ``optout``, a (claimed) confirmation or re-subscription ``consent``.
    action = classify(data.text)
    scope = "consent" if action in ("confirm", "opt_in") else "optout"
    sender = resolve_sender(session, caller(), owner.code, scope, now)
    reach = optout_reach(session, sender, now) if action == "opt_out_all" else None
    received = to_utc(data.received_at, cfg.tz) if data.received_at else now
    outcome = replies.handle_reply(
        session, cfg, actor_for(sender), sender, phone, data.text, received,
        port=data.to, reach=reach,
    )  # fmt: skip
    session.commit()
    return jsonify(
        {
            "action": outcome.action,
            "sender": sender.code,
            "reply": outcome.reply,
            "claimed": outcome.claimed,
            "opted_out": list(outcome.opted_out),
        }
    )
