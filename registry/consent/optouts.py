"""Opt-outs: a holder's refusal of a sender, recorded, lifted by the holder, or ended on time.

``record_optout`` writes the refusal and its event (it wins over any earlier
consent at once); ``record_reported_optout`` is a sender reporting one through
the API, against its per-process copies; ``withdraw_optouts`` is the holder's
unblock on the site; ``end_timed_optouts`` and ``timed_optouts`` serve the
refusals with an end the holder chose (consent/refusals.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry import copies
from registry.consent.models import OptOut
from registry.consent.services import CLOCK_SKEW, channels_text
from registry.database.statements import table_of
from registry.errors import NotFound, ValidationFailed
from registry.events import services as events
from registry.events.services import SYSTEM, Actor
from registry.orgs.services import Caller
from registry.senders.models import Sender
from registry.senders.services import SenderRef
from registry.timeutil import utcnow

TEXT_KEPT = 1000  # opt_out.text; an SMS reply may be longer (up to 1,600 characters)


@dataclass(frozen=True, slots=True)
class RecordedOptOut:
    """An opt-out as it was recorded: what the API answers with."""

    id: int
    phone: str
    sender_id: int
    channels: str
    source: str
    received_at: datetime
    created_at: datetime


def record_optout(
    session: Session,
    actor: Actor,
    sender: SenderRef,
    phone: str,
    channels: list[str],
    source: str,
    received_at: datetime | None = None,
    text: str | None = None,
    only_if: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> RecordedOptOut:
    """Record a refusal of ``sender``; it wins over any earlier consent at once.

    ``expires_at``: the end the holder chose for it ("for 3 months"); it no
    longer counts from then on (``end_timed_optouts`` closes the row).

    With ``only_if`` (``copies.hold_params``) the opt-out is inserted only
    while the caller's key and sender still match those copies, in the same
    statement, and StaleCopy is raised, with nothing written, when they do not.

    Two Core inserts on the session's connection, the opt-out and its event,
    and nothing read back but the new id: opt-outs arrive in volume (issue 3),
    and building and flushing an ``OptOut`` object for a row nobody reads in
    the same transaction cost more than both inserts (docs/performance.md).
    """
    now = utcnow()
    received = received_at or now
    if received > now + CLOCK_SKEW:
        raise ValidationFailed("received_at is in the future", field="received_at")
    chosen = channels_text(channels)
    values = {
        "phone": phone,
        "sender_id": sender.id,
        "organization_id": actor.org_id,
        "agent_id": actor.agent_id,
        "channels": chosen,
        "source": source,
        "text": text[:TEXT_KEPT] if text is not None else None,
        "received_at": received,
        "created_at": now,
    }
    if expires_at is not None:
        values["expires_at"] = expires_at
    if only_if is None:
        optout_id: int = session.connection().execute(_INSERT_OPTOUT, values).scalar_one()
    else:
        found = (
            session.connection().execute(_INSERT_OPTOUT_IF, values | only_if).scalar_one_or_none()
        )
        if found is None:
            raise copies.StaleCopy
        optout_id = found
    events.record(
        session,
        actor,
        phone,
        "optout.recorded",
        sender_id=sender.id,
        organization_id=sender.organization_id,
        channels=chosen,
        state="opted_out",
        data={"source": source, "received_at": received, "text": events.quoted(text)}
        | ({"expires_at": expires_at} if expires_at is not None else {}),
        at=now,
    )
    return RecordedOptOut(optout_id, phone, sender.id, chosen, source, received, now)


def record_reported_optout(
    session: Session,
    who: Caller,
    key: str,
    sender_code: str,
    phone: str,
    channels: list[str],
    source: str,
    received_at: datetime | None = None,
    text: str | None = None,
) -> tuple[RecordedOptOut, SenderRef]:
    """Record a refusal a sender reports through the API (caller ``who``, bearer ``key``).

    The caller and an owner's sender come from per-process copies, and the
    insert happens only while they still match (``copies.HOLD``); when they do
    not, or for a delegated call (more rows to compare), both are read afresh.
    """
    now = utcnow()
    sender = copies.sender(lambda: session, who, sender_code, "optout", now)
    args = (phone, channels, source, received_at, text)
    if sender.agent_id is None:
        try:
            only_if = copies.hold_params(who, sender)
            optout = record_optout(session, _api_actor(who, sender), sender, *args, only_if=only_if)
            return optout, sender
        except copies.StaleCopy:
            pass
    who, sender = copies.afresh(session, key, who, sender_code, "optout", now)
    return record_optout(session, _api_actor(who, sender), sender, *args), sender


def _api_actor(who: Caller, sender: SenderRef) -> Actor:
    """Return who acts: the sender's organization, through the caller if it is an agent."""
    return Actor(f"org:{who.slug}", "api", org_id=sender.organization_id, agent_id=sender.agent_id)


_OPTOUT_COLUMNS = (
    "phone", "sender_id", "organization_id", "agent_id", "channels", "source", "text",
    "received_at", "created_at",
)  # fmt: skip


_INSERT_OPTOUT = insert(table_of(OptOut)).returning(table_of(OptOut).c.id)


# The same row, inserted only while the per-process copies hold (copies.HOLD).
_INSERT_OPTOUT_IF = (
    insert(table_of(OptOut))
    .from_select(
        list(_OPTOUT_COLUMNS),
        select(
            *(bindparam(name, type_=table_of(OptOut).c[name].type) for name in _OPTOUT_COLUMNS)
        ).where(copies.HOLD),
    )
    .returning(table_of(OptOut).c.id)
)


def withdraw_optouts(session: Session, actor: Actor, phone: str, sender_id: int) -> int:
    """Lift the holder's own blocks of a sender (an unblock on the site); return how many."""
    now = utcnow()
    rows = session.scalars(
        select(OptOut).where(
            col(OptOut.phone) == phone,
            col(OptOut.sender_id) == sender_id,
            col(OptOut.withdrawn_at).is_(None),
        )
    ).all()
    if not rows:
        raise NotFound("that sender is not blocked for your number")
    for optout in rows:
        optout.withdrawn_at = now
    events.record(
        session,
        actor,
        phone,
        "optout.withdrawn",
        sender_id=sender_id,
        organization_id=rows[0].organization_id,
        channels=",".join(sorted({c for o in rows for c in o.channels.split(",")})),
        state="withdrawn",
        at=now,
    )
    return len(rows)


def end_timed_optouts(session: Session, now: datetime | None = None) -> list[OptOut]:
    """Close every block whose chosen end has come; return them.

    Each is marked withdrawn at its end, with an ``optout.expired`` event dated
    then (the sender's organization reads it in its feed); the decision
    already ignored the block from that moment.
    """
    now = now or utcnow()
    rows = session.scalars(
        select(OptOut)
        .where(
            col(OptOut.expires_at).is_not(None),
            col(OptOut.expires_at) <= now,
            col(OptOut.withdrawn_at).is_(None),
        )
        .order_by(col(OptOut.expires_at))
        .with_for_update()
    ).all()
    for optout in rows:
        end = optout.expires_at or now
        optout.withdrawn_at = end
        sender = session.get(Sender, optout.sender_id)
        events.record(
            session,
            SYSTEM,
            optout.phone,
            "optout.expired",
            sender_id=optout.sender_id,
            organization_id=sender.organization_id if sender else None,
            channels=optout.channels,
            state="expired",
            at=end,
        )
    session.flush()
    return list(rows)


def timed_optouts(session: Session, before: datetime) -> list[tuple[OptOut, str]]:
    """Return the blocks in force that end before ``before``, each with its sender's name."""
    rows = session.execute(
        select(OptOut, col(Sender.name))
        .join(Sender, col(Sender.id) == col(OptOut.sender_id))
        .where(
            col(OptOut.expires_at).is_not(None),
            col(OptOut.expires_at) <= before,
            col(OptOut.withdrawn_at).is_(None),
        )
    ).all()
    return [(optout, name) for optout, name in rows]
