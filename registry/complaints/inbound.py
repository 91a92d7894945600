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

from datetime import datetime

from sqlalchemy.orm import Session

from registry.complaints import forwarding, routing, services
from registry.config import Settings
from registry.consent.gateway import RegistryReply, handle_registry_reply
from registry.subscribers.models import Subscriber


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
