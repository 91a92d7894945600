"""Consents' lifecycle: record them with evidence, confirm, revoke, expire, void and restore.

Opt-outs are consent/optouts.py's, acting on SMS replies consent/replies.py's,
re-derivation from the events consent/derivation.py's, and the holder's
pages' queries consent/holders.py's.

Every change writes a ``ConsentEvent`` in the same transaction as the state it
changes; the consent row is the current state those events imply.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.consent.models import CHANNELS, Consent, ConsentKey
from registry.database.statements import table_of
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.events import services as events
from registry.events.models import Event
from registry.events.services import SYSTEM, Actor
from registry.senders.services import SenderRef
from registry.sms import services as sms
from registry.timeutil import utcnow

CLOCK_SKEW = timedelta(minutes=5)
CHANNEL_NAMES = {"sms": "短信", "voice": "电话"}
# Called with the number about to be texted for a sender (a code, a confirmation);
# raises RateLimited when that number's budget of such texts is spent.
TextGate = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Evidence:
    """How and when the holder gave consent, as the sender can prove it."""

    method: str
    captured_at: datetime
    wording: str | None = None
    reference: str | None = None
    sha256: str | None = None
    ip: str | None = None


def channels_text(channels: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return channels as the sorted, comma-separated form the tables keep."""
    chosen = sorted(set(channels))
    if not chosen or any(c not in CHANNELS for c in chosen):
        raise ValidationFailed("channels must be a non-empty list of voice, sms", field="channels")
    return ",".join(chosen)


def _event(
    session: Session,
    consent: Consent,
    type_: str,
    actor: Actor,
    note: str | None = None,
    at: datetime | None = None,
    extra: dict[str, object] | None = None,
) -> None:
    data: dict[str, object] = {"note": note} if note else {}
    data.update(extra or {})
    if type_ == "created":
        data.update(
            method=consent.evidence_method,
            captured_at=consent.evidence_captured_at,
            wording=consent.evidence_wording,
            reference=consent.evidence_reference,
            sha256=consent.evidence_sha256,
            ip=consent.evidence_ip,
            expires_at=consent.expires_at,
            external_id=consent.external_id,
        )
    events.record(
        session,
        actor,
        consent.phone,
        f"consent.{type_}",
        sender_id=consent.sender_id,
        organization_id=consent.organization_id,
        consent_id=consent.id,
        channels=consent.channels,
        category=consent.category,
        state=consent.status,
        data=data,
        at=at,
    )


def confirmation_text(
    sender: SenderRef, channels: str, category: str | None, ref: str, number: str
) -> str:
    """Return the text asking the holder to confirm a pending consent.

    It is sent from the registry's own number (``REGISTRY_SMS_NUMBER``), and a
    reply to that number is the only SMS that confirms: ``ref`` tells several
    pending requests apart ("Y 4821").
    """
    how = "、".join(CHANNEL_NAMES[c] for c in channels.split(","))
    topic = f"（{category}）" if category else ""
    return (
        f"【Anning】{sender.name} 请求通过{how}向您发送营销信息{topic}，编号 {ref}。"
        f"回复 Y 同意（有多个请求时回复 Y {ref}）；不回复则不生效；回复 TD {ref} 拒绝。"
        f"本短信来自安宁登记处 {number}。"
    )


_PENDING_REFS = select(table_of(Consent).c.reply_ref).where(
    table_of(Consent).c.phone == bindparam("phone"), table_of(Consent).c.status == "pending"
)


def _new_reply_ref(session: Session, phone: str) -> str:
    """Return a 4-digit reference no other pending consent of this number carries."""
    # On the connection, not the session: no autoflush of a bulk's thousands of objects.
    taken: set[str] = set(session.connection().execute(_PENDING_REFS, {"phone": phone}).scalars())
    for _ in range(50):
        ref = f"{1000 + secrets.randbelow(9000)}"
        if ref not in taken:
            return ref
    return ref  # 50 draws all taken: 9,000 codes; a clash only makes "Y <ref>" ask again


def create_consent(
    session: Session,
    settings: Settings,
    actor: Actor,
    sender: SenderRef,
    phone: str,
    channels: list[str],
    evidence: Evidence,
    *,
    category: str | None = None,
    expires_at: datetime | None = None,
    external_id: str | None = None,
    confirmed: bool = False,
    text_gate: TextGate | None = None,
) -> tuple[Consent, bool]:
    """Record a consent; return it and whether it is new (False: same external_id seen).

    With confirmation required (the default) a consent is ``pending`` until the
    holder replies Y, and the registry texts them; ``confirmed=True`` is for
    consents the registry itself verified (OTP, the holder on the site).
    ``text_gate`` is asked before that text: when it refuses (the number had
    its share of consent texts), the consent is not recorded either — a
    pending consent the holder is never asked about could never be confirmed,
    so the caller is told to retry (the same ``external_id`` is safe to resend).
    """
    keyed = (
        (actor.org_id, external_id)
        if external_id is not None and actor.org_id is not None
        else None
    )
    if keyed is not None:
        existing = _by_external(session, *keyed)
        if existing is not None:
            return existing, False
    chans = channels_text(channels)
    now = utcnow()
    if evidence.captured_at > now + CLOCK_SKEW:
        raise ValidationFailed(
            "evidence.captured_at is in the future", field="evidence.captured_at"
        )
    if expires_at is not None and expires_at <= evidence.captured_at:
        raise ValidationFailed(
            "expires_at must be after the evidence was captured", field="expires_at"
        )
    active = confirmed or not settings.require_confirmation
    consent = Consent(
        phone=phone,
        sender_id=sender.id,
        organization_id=actor.org_id or sender.organization_id,
        agent_id=actor.agent_id,
        channels=chans,
        category=category,
        status="active" if active else "pending",
        expires_at=expires_at,
        pending_until=None if active else now + timedelta(days=settings.consent_pending_days),
        external_id=external_id,
        evidence_method=evidence.method,
        evidence_captured_at=evidence.captured_at,
        evidence_wording=evidence.wording,
        evidence_reference=evidence.reference,
        evidence_sha256=evidence.sha256,
        evidence_ip=evidence.ip,
        created_at=now,
        activated_at=(now if confirmed else evidence.captured_at) if active else None,
        reply_ref=None if active else _new_reply_ref(session, phone),
    )
    if keyed is not None:
        # The idempotency key first (its own shard, by organization), in a
        # savepoint: when a concurrent retry with the same external_id holds it,
        # this waits for that push's commit, only this insert is undone and the
        # winner returned. The consent goes in after it, in the same transaction.
        key = ConsentKey(organization_id=keyed[0], external_id=keyed[1], phone=phone)
        try:
            with session.begin_nested():
                session.add(key)
                session.flush()
        except IntegrityError:
            existing = _by_external(session, *keyed)
            if existing is None:
                raise
            return existing, False
    session.add(consent)
    session.flush()
    if keyed is not None:
        key.consent_id = consent.id
    _event(session, consent, "created", actor, note=evidence.method)
    if confirmed:
        # Verified by the registry itself (OTP, the holder on the site or by SMS);
        # a consent active only because confirmation is switched off has no such event.
        _event(session, consent, "confirmed", actor, at=consent.activated_at)
    else:
        if text_gate is not None:
            # Raises before anything is sent; the caller's rollback undoes the rest.
            text_gate(phone)
        text = confirmation_text(
            sender, chans, category, consent.reply_ref or "", settings.sms_number
        )
        sms.send(session, phone, text, "consent_confirm")
    return consent, True


def _by_external(session: Session, org_id: int, external_id: str) -> Consent | None:
    """Return the consent a push with this key recorded: the key names its phone and id."""
    return session.scalar(
        select(Consent)
        .join(
            ConsentKey,
            and_(
                col(ConsentKey.consent_id) == col(Consent.id),
                col(ConsentKey.phone) == col(Consent.phone),
            ),
        )
        .where(
            col(ConsentKey.organization_id) == org_id, col(ConsentKey.external_id) == external_id
        )
    )


def get_consent(
    session: Session,
    consent_id: int,
    org_id: int | None = None,
    allowed_senders: set[int] | None = None,
) -> Consent:
    """Return a consent; an organization may read only its own senders' consents."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"no consent {consent_id}")
    if (
        org_id is not None
        and consent.organization_id != org_id
        and (allowed_senders is None or consent.sender_id not in allowed_senders)
    ):
        raise Forbidden("that consent belongs to another organization")
    return consent


def history(session: Session, consent_id: int) -> list[Event]:
    """Return a consent's events, oldest first."""
    return events.for_consent(session, consent_id)


def confirm(session: Session, consent: Consent, actor: Actor) -> Consent:
    """Turn a pending consent active (the holder said yes)."""
    if consent.status != "pending":
        raise Conflict(f"the consent is {consent.status}, not pending")
    now = utcnow()
    if consent.pending_until is not None and consent.pending_until <= now:
        _end(session, consent, "expired", SYSTEM, now)
        raise Conflict("the consent expired before it was confirmed")
    consent.status = "active"
    consent.activated_at = now
    _event(session, consent, "confirmed", actor, at=now)
    return consent


def pending_for(session: Session, phone: str) -> list[Consent]:
    """Return this number's pending consents, oldest first (what a "Y" may confirm)."""
    return list(
        session.scalars(
            select(Consent)
            .where(col(Consent.phone) == phone, col(Consent.status) == "pending")
            .order_by(col(Consent.id))
        )
    )


def _end(
    session: Session,
    consent: Consent,
    status: str,
    actor: Actor,
    at: datetime,
    note: str | None = None,
    extra: dict[str, object] | None = None,
) -> None:
    consent.status = status
    consent.ended_at = at
    _event(
        session, consent, {"void": "voided"}.get(status, status), actor, note=note, at=at,
        extra=extra,
    )  # fmt: skip


def revoke(session: Session, consent: Consent, actor: Actor) -> Consent:
    """Revoke a consent; effective for every check from the commit on."""
    if consent.status not in ("pending", "active"):
        raise Conflict(f"the consent is already {consent.status}")
    _end(session, consent, "revoked", actor, utcnow())
    return consent


def expire_due(session: Session, now: datetime | None = None) -> int:
    """Mark consents whose time ran out as expired, with an event each; return how many."""
    now = now or utcnow()
    due = session.scalars(
        select(Consent).where(
            ((col(Consent.status) == "pending") & (col(Consent.pending_until) <= now))
            | ((col(Consent.status) == "active") & (col(Consent.expires_at) <= now))
        )
    ).all()
    for consent in due:
        _end(session, consent, "expired", SYSTEM, now)
    return len(due)


def void_before(
    session: Session,
    phone: str,
    disconnected_at: datetime,
    actor: Actor,
    disconnection_id: int | None = None,
) -> int:
    """Void every consent of ``phone`` given before a disconnection; return how many.

    Each ``consent.voided`` event names the disconnection and the status it
    ended, so that retracting the disconnection can restore exactly these
    (``restore_voided``).
    """
    rows = session.scalars(
        select(Consent).where(
            and_(
                col(Consent.phone) == phone,
                col(Consent.status).in_(("pending", "active")),
                col(Consent.evidence_captured_at) <= disconnected_at,
            )
        )
    ).all()
    for consent in rows:
        extra: dict[str, object] = {"previous": consent.status}
        if disconnection_id is not None:
            extra["disconnection"] = disconnection_id
        _end(session, consent, "void", actor, utcnow(), note="number disconnected", extra=extra)
    return len(rows)


def restore_voided(
    session: Session,
    phone: str,
    disconnection_id: int,
    actor: Actor,
    still_cut_at: datetime | None = None,
) -> int:
    """Give back the status of every consent a retracted disconnection voided; return how many.

    The consents are found through their ``consent.voided`` events, which name
    the disconnection and the status it ended. A consent that another,
    still-standing disconnection (at ``still_cut_at``, the latest) would have
    voided too stays void. A restored pending consent whose time ran out is
    expired by the next ``expire_due`` as any other.
    """
    previous: dict[int, str] = {}
    voided = session.execute(
        select(col(Event.consent_id), col(Event.data)).where(
            col(Event.phone) == phone, col(Event.type) == "consent.voided"
        )
    ).all()
    for consent_id, data in voided:
        detail = json.loads(data) if data else {}
        if consent_id is not None and detail.get("disconnection") == disconnection_id:
            previous[consent_id] = detail.get("previous") or "active"
    if not previous:
        return 0
    rows = session.scalars(
        select(Consent)
        .where(col(Consent.id).in_(previous), col(Consent.status) == "void")
        .with_for_update()
    ).all()
    restored = 0
    for consent in rows:
        if still_cut_at is not None and consent.evidence_captured_at <= still_cut_at:
            continue
        consent.status = previous[consent.id or 0]
        consent.ended_at = None
        _event(session, consent, "restored", actor, note="disconnection retracted",
               extra={"disconnection": disconnection_id})  # fmt: skip
        restored += 1
    return restored


def list_consents(
    session: Session,
    org_id: int | None,
    *,
    phone: str | None = None,
    sender_id: int | None = None,
    status: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[Consent]:
    """Return consents for an organization's senders (or one sender), oldest first, paged by id."""
    query = select(Consent).where(col(Consent.id) > after)
    if org_id is not None:
        query = query.where(col(Consent.organization_id) == org_id)
    if phone is not None:
        query = query.where(col(Consent.phone) == phone)
    if sender_id is not None:
        query = query.where(col(Consent.sender_id) == sender_id)
    if status is not None:
        query = query.where(col(Consent.status) == status)
    return list(session.scalars(query.order_by(col(Consent.id)).limit(limit)))
