"""Replies to the registry's own number, brought by the SMS gateway: the holder's own voice.

The registry texts every confirmation request from its own number
(``REGISTRY_SMS_NUMBER``); the carrier delivers what the holder sends to that
number to the registry's gateway, which posts it to
``/api/v1/gateway/inbound-sms`` with a key of role ``gateway``. No sender can
write on this channel, so here, and only here among SMS replies, a "Y"
confirms, a "START" re-subscribes and a "全部退订" turns on do-not-disturb.

Which request a reply means: the confirmation text carries a 4-digit
reference ("编号 4821"). A bare "Y" confirms when the number has pending
requests from exactly one sender; with several it confirms nothing and asks
for the reference ("Y 4821"), because confirming a request the holder did not
mean is worse than asking once more. "TD"/"退订" refuses the request it names
(or the only one waiting) and opts out of its sender; a sender's port, number
or code names a sender too ("TD 10690001", "START 10690001").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.consent import optouts
from registry.consent import services as consents
from registry.consent.models import CHANNELS, Consent
from registry.consent.replies import registry_reply, split_reference
from registry.errors import Conflict
from registry.events.services import Actor, quoted
from registry.senders.services import SenderRef, sender_by_id, sender_by_reference
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber

HOLDER_SMS = Actor("subscriber", "sms")
log = logging.getLogger("registry.gateway")


@dataclass(frozen=True, slots=True)
class RegistryReply:
    """What a reply to the registry's number did, and the text to send back from it."""

    action: str
    reply: str
    sender: str | None = None
    consents: tuple[int, ...] = ()
    complaint: str | None = None  # the reference of a complaint a forwarded text filed


@dataclass(frozen=True, slots=True)
class _Named:
    sender: SenderRef
    pending: list[Consent]


def _named(session: Session, phone: str, ref: str, now: datetime) -> _Named | None:
    """Return the sender (and its pending consents) a reference names, or None."""
    by_ref = session.scalars(
        select(Consent).where(
            col(Consent.phone) == phone,
            col(Consent.reply_ref) == ref,
            col(Consent.status).in_(("pending", "active")),
        )
    ).all()
    if len({c.sender_id for c in by_ref}) == 1:
        pending = [c for c in by_ref if c.status == "pending"]
        return _Named(sender_by_id(session, by_ref[0].sender_id, now), pending)
    sender = sender_by_reference(session, ref, now)
    if sender is None:
        return None
    pending = [c for c in consents.pending_for(session, phone) if c.sender_id == sender.id]
    return _Named(sender, pending)


def _waiting(session: Session, phone: str, now: datetime) -> dict[int, list[Consent]]:
    """Return this number's pending consents still open, by sender."""
    by_sender: dict[int, list[Consent]] = {}
    for consent in consents.pending_for(session, phone):
        if consent.pending_until is None or consent.pending_until > now:
            by_sender.setdefault(consent.sender_id, []).append(consent)
    return by_sender


def handle_registry_reply(
    session: Session,
    settings: Settings,
    phone: str,
    text: str,
    received_at: datetime,
    now: datetime,
) -> RegistryReply:
    """Act for the holder on a reply they sent to the registry's own number."""
    action, ref = split_reference(text)
    holder = session.get(Subscriber, phone)
    lang = holder.language if holder is not None else None
    if action == "opt_out_all":
        subscribers.set_preferences(session, phone, HOLDER_SMS, dnd_sms=True)
        return RegistryReply(action, registry_reply(action, lang))
    if action not in ("confirm", "opt_out", "opt_in"):
        return RegistryReply("help" if action == "help" else "none", registry_reply("help", lang))
    named = _which(session, phone, action, ref, now, lang)
    if isinstance(named, RegistryReply):
        return named
    label = ref or (named.pending[-1].reply_ref or "" if named.pending else "")
    if action == "confirm":
        return _confirm(session, named, label, lang)
    if action == "opt_out":
        return _refuse(session, named, phone, text, received_at, lang)
    return _resubscribe(session, settings, named.sender, phone, text, received_at, label, lang)


def _which(
    session: Session, phone: str, action: str, ref: str | None, now: datetime, lang: str | None
) -> _Named | RegistryReply:
    """Return the sender a reply means, or the reply asking the holder to say which."""
    named = _named(session, phone, ref, now) if ref is not None else None
    if named is not None:
        return named
    # An unknown word after STOP ("stop please") is no reference; anything else is.
    if ref is not None and (ref.isdigit() or action != "opt_out"):
        return RegistryReply(action, registry_reply("unknown", lang, ref=ref))
    if action == "opt_in":
        return RegistryReply(action, registry_reply("opt_in_which", lang))
    waiting = _waiting(session, phone, now)
    if not waiting:
        key = "confirm_none" if action == "confirm" else "opt_out_which"
        return RegistryReply(action, registry_reply(key, lang))
    if len(waiting) > 1:
        refs = "、".join(
            f"{sender_by_id(session, sid, now).name} {cs[-1].reply_ref}"
            for sid, cs in waiting.items()
        )
        key = "choose" if action == "confirm" else "opt_out_which"
        return RegistryReply(action, registry_reply(key, lang, refs=refs))
    ((sender_id, pending),) = waiting.items()
    return _Named(sender_by_id(session, sender_id, now), pending)


def _confirm(session: Session, named: _Named, label: str, lang: str | None) -> RegistryReply:
    done = []
    for consent in named.pending:
        try:
            done.append(consents.confirm(session, consent, HOLDER_SMS).id or 0)
        except Conflict:  # expired while waiting: confirm recorded it as such
            continue
    key = "confirm" if done else "confirm_none"
    reply = registry_reply(key, lang, sender=named.sender.name, ref=label)
    return RegistryReply("confirm", reply, named.sender.code, tuple(done))


def _refuse(
    session: Session,
    named: _Named,
    phone: str,
    text: str,
    received_at: datetime,
    lang: str | None,
) -> RegistryReply:
    """Refuse the requests named and opt out of their sender on every channel."""
    for consent in named.pending:
        consents.revoke(session, consent, HOLDER_SMS)
    optouts.record_optout(
        session, HOLDER_SMS, named.sender, phone, list(CHANNELS), "sms_reply", received_at, text
    )
    reply = registry_reply("opt_out", lang, sender=named.sender.name)
    return RegistryReply(
        "opt_out", reply, named.sender.code, tuple(c.id or 0 for c in named.pending)
    )


def _resubscribe(
    session: Session,
    settings: Settings,
    sender: SenderRef,
    phone: str,
    text: str,
    received_at: datetime,
    label: str,
    lang: str | None,
) -> RegistryReply:
    """Record the holder's START to a sender as their express consent by SMS."""
    evidence = consents.Evidence(
        "sms_reply",
        received_at,
        wording=quoted(text),
        reference=f"sms-reply:{settings.sms_number}",
    )
    consent, _ = consents.create_consent(
        session, settings, HOLDER_SMS, sender, phone, ["sms"], evidence, confirmed=True
    )
    reply = registry_reply("opt_in", lang, sender=sender.name, ref=label)
    return RegistryReply("opt_in", reply, sender.code, (consent.id or 0,))
