"""A text to the registry's own number: a forwarded unwanted message, or a reply.

The gateway (registry/api/gateway.py) brings every text the holder sends to
the registry's number here. A forwarded message (registry/complaints/forwarding.py)
becomes a complaint of intake ``sms`` about the contact, routed at once, and
the holder gets its reference back; a forward without a sender number is kept
as a complaint all the same (the regulator's desk sees it, the holder is asked
for the number). Anything else is a reply (Y, START, TD <ref>, 全部退订) for
registry/consent/gateway.py.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from registry import phones
from registry.complaints import forwarding, routing, services
from registry.config import Settings
from registry.consent.gateway import RegistryReply, handle_registry_reply
from registry.errors import InvalidPhoneError, UnknownAddress
from registry.sms import services as sms
from registry.subscribers.models import Subscriber

log = logging.getLogger(__name__)


def handle(
    session: Session,
    settings: Settings,
    phone: str,
    text: str,
    received_at: datetime,
    now: datetime,
) -> RegistryReply:
    """File the forward ``text`` is as a complaint, or act on it as a reply; the caller commits."""
    forward = forwarding.parse(text)
    if forward is None:
        return handle_registry_reply(session, settings, phone, text, received_at, now)
    complaint = routing.lodge(
        session, settings, phone, forward.address or "", "sms", min(received_at, now),
        forward.body, services.Intake(intake="sms"),
    )  # fmt: skip
    holder = session.get(Subscriber, phone)
    lang = holder.language if holder is not None else None
    if forward.address is None:
        key, ref = "no_number", complaint.reference
    elif complaint.duplicate_of is not None:
        key, ref = "duplicate", services.get(session, complaint.duplicate_of).reference
    else:
        key, ref = "filed", complaint.reference
    return RegistryReply("complaint", forwarding.reply_text(key, lang, ref),
                         complaint=complaint.reference)  # fmt: skip


def receive(
    session: Session,
    settings: Settings,
    sender_phone: str,
    to: str | None,
    text: str,
    received_at: datetime,
    now: datetime,
    *,
    send_reply: bool = False,
) -> RegistryReply:
    """Act on a text a gateway brought: the one path of every gateway's texts to the registry.

    ``to`` is the number the holder wrote to, where the gateway tells it; it
    must be the registry's own (a reply to any other port is not the holder
    speaking to the registry: refused and logged, nothing recorded). With
    ``send_reply`` the answer is queued in the outbox, for gateways that do not
    carry it back themselves (Kannel, the SMS clouds' callbacks).
    """
    if to is not None and to.replace(" ", "").replace("-", "") != settings.sms_number:
        log.warning("reply from a gateway to %r, not the registry's number: ignored", to)
        raise UnknownAddress(
            f"the registry's number is {settings.sms_number}; replies to senders go to "
            "/inbound-sms",
            field="to",
        )
    try:
        phone = phones.to_e164(sender_phone, settings.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="from") from exc
    outcome = handle(session, settings, phone, text, received_at, now)
    if send_reply and outcome.reply:
        sms.send(session, phone, outcome.reply, "reply")
    return outcome
