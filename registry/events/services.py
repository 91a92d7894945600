"""Write events: the one place a change to a number's record is recorded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from registry.events.models import Event
from registry.timeutil import iso, utcnow

# The fields an event's hash covers: everything a reader relies on, in a fixed
# order. Not ``id`` (the chain orders events, ids may differ after a restore)
# and not ``seq`` (given after commit, see registry/sync/feed.py).
CHAINED = (
    "phone", "type", "at", "sender_id", "consent_id", "organization_id", "agent_id",
    "actor", "via", "channels", "category", "state", "data",
)  # fmt: skip
# Advisory lock class for "the chain of one phone" on PostgreSQL.
PHONE_LOCK = 0x616E  # "an"
_LOCK_PHONE = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:phone))")
_LATEST_HASH = (
    select(Event.hash).where(Event.phone == bindparam("phone")).order_by(Event.id.desc()).limit(1)  # type: ignore[union-attr]
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: an organization (maybe an agent for it), the holder, or the system."""

    label: str  # "org:<slug>", "subscriber", "system", "carrier:<slug>"
    via: str  # api, site, sms, otp, cli, system
    org_id: int | None = None
    agent_id: int | None = None


SYSTEM = Actor("system", "system")


def record(
    session: Session,
    actor: Actor,
    phone: str,
    type_: str,
    *,
    sender_id: int | None = None,
    organization_id: int | None = None,
    consent_id: int | None = None,
    channels: str | None = None,
    category: str | None = None,
    state: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Append an event in the caller's transaction, chained to the phone's previous event.

    The chain needs writers on one phone to take turns: on PostgreSQL a
    transaction-scoped advisory lock per phone (a row lock cannot cover a
    phone's *first* event, which has no row to lock yet); SQLite writers are
    serialized already (every transaction is BEGIN IMMEDIATE, see db.py). The
    lock is taken before reading the predecessor, and in READ COMMITTED the
    next statement sees whatever the previous holder committed.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_PHONE, {"cls": PHONE_LOCK, "phone": phone})
    prev = session.execute(_LATEST_HASH, {"phone": phone}).scalar()
    event = Event(
        phone=phone,
        type=type_,
        at=at or utcnow(),
        sender_id=sender_id,
        consent_id=consent_id,
        organization_id=organization_id if organization_id is not None else actor.org_id,
        agent_id=actor.agent_id,
        actor=actor.label,
        via=actor.via,
        channels=channels,
        category=category,
        state=state,
        data=json.dumps(data, ensure_ascii=False, default=str, sort_keys=True) if data else None,
    )
    event.prev_hash = prev
    event.hash = chain_hash(event_fields(event), prev)
    session.add(event)
    session.flush()
    return event


def event_fields(event: Event | Any) -> dict[str, Any]:
    """Return the chained fields of an event (an ORM object or a row with those names)."""
    return {name: getattr(event, name) for name in CHAINED}


def chain_hash(fields: dict[str, Any], prev: str | None) -> str:
    """Return sha256 over the canonical JSON of the event's fields and its predecessor's hash.

    Canonical: sorted keys, no spaces, times as ISO 8601 UTC with microseconds.
    """
    doc = {k: (iso(v) if k == "at" else v) for k, v in fields.items()} | {"prev": prev}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def for_consent(session: Session, consent_id: int) -> list[Event]:
    """Return a consent's events, oldest first."""
    return list(
        session.scalars(
            select(Event).where(Event.consent_id == consent_id).order_by(Event.id)  # type: ignore[arg-type]
        )
    )


def for_phone(session: Session, phone: str, limit: int = 1000) -> list[Event]:
    """Return a number's events, oldest first."""
    return list(
        session.scalars(
            select(Event).where(Event.phone == phone).order_by(Event.id).limit(limit)  # type: ignore[arg-type]
        )
    )
