"""Write events: the one place a change to a number's record is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, true
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.events.models import Event
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.timeutil import utcnow


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
) -> None:
    """Append an event in the caller's transaction.

    A plain Core insert on the session's connection: every write path records
    events, and building and flushing an ORM object for a row nobody reads back
    in the same transaction costs more than the insert itself.
    """
    session.connection().execute(
        _INSERT,
        {
            "phone": phone,
            "type": type_,
            "at": at or utcnow(),
            "sender_id": sender_id,
            "consent_id": consent_id,
            "organization_id": organization_id if organization_id is not None else actor.org_id,
            "agent_id": actor.agent_id,
            "actor": actor.label,
            "via": actor.via,
            "channels": channels,
            "category": category,
            "state": state,
            "data": json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
            if data
            else None,
        },
    )


_INSERT = insert(Event.__table__)  # type: ignore[attr-defined]
QUOTE_KEPT = 500


def quoted(text: str | None) -> str | None:
    """Return a holder's text as an event keeps it: its first 500 characters.

    ``event.data`` holds at most 4,000 characters of JSON, where a control
    character takes six (``\\u0001``): 500 always fit beside the other fields,
    while a 1,600-character SMS reply might not.
    """
    return text[:QUOTE_KEPT] if text is not None else None


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


def each_for_phone(session: Session, phone: str, page: int = 1000) -> Iterator[Event]:
    """Yield every event of a number, oldest first, a page at a time (the holder's download).

    Keyset pages on ``ix_event_phone_id``: memory stays one page whatever the
    history's length, and no event is skipped or repeated between pages.
    """
    after = 0
    while True:
        rows = list(
            session.scalars(
                select(Event)
                .where(col(Event.phone) == phone, col(Event.id) > after)
                .order_by(col(Event.id))
                .limit(page)
            )
        )
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].id or 0
        session.expunge_all()  # the page's objects are written out: let them go


# A page of the holder's record on the site (/me/data); the download has every event at once.
HISTORY_PAGE = 100


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a number's events, newest first, and the keys of the pages beside it.

    ``older`` is the ``before`` of the next older page, ``newer`` the ``after``
    of the next newer one (None at either end); ``total`` counts every event
    of the number.
    """

    items: list[tuple[Event, str | None, str | None]]
    older: int | None
    newer: int | None
    total: int


def history_page(
    session: Session,
    phone: str,
    before: int | None = None,
    after: int | None = None,
    size: int = HISTORY_PAGE,
) -> HistoryPage:
    """Return a page of a number's events, newest first, each with its organization's and sender's names.

    Keyset pages on ``ix_event_phone_id`` (phone, id): the ``size`` events
    just older than the event id ``before``, or just newer than ``after``, or
    else the newest. A page costs the same at any depth, and an event
    recorded while the holder reads moves nothing between pages (an offset
    would show one twice). The keys are bounds on ids, not references to
    rows, and the number is always the signed-in holder's: a key copied from
    another number's pages shows this number's events only.
    """
    ids, number = col(Event.id), col(Event.phone) == phone
    query = (
        select(Event, col(Organization.name), col(Sender.name))
        .outerjoin(Organization, col(Organization.id) == col(Event.organization_id))
        .outerjoin(Sender, col(Sender.id) == col(Event.sender_id))
        .where(number)
        .limit(size + 1)  # one more than a page: whether another lies beyond
    )
    if after is not None:
        rows = list(session.execute(query.where(ids > after).order_by(ids)))
        more = len(rows) > size
        rows = rows[:size][::-1]
    else:
        bound = ids < before if before is not None else true()
        rows = list(session.execute(query.where(bound).order_by(ids.desc())))
        more = len(rows) > size
        rows = rows[:size]
    items: list[tuple[Event, str | None, str | None]] = [
        (event, org, sender) for event, org, sender in rows
    ]
    if not items:
        return HistoryPage([], None, None, _count(session, phone))
    first, last = items[0][0].id, items[-1][0].id

    def any_beyond(bound: ColumnElement[bool]) -> bool:
        return session.scalar(select(ids).where(number, bound).limit(1)) is not None

    if after is not None:
        newer = first if more else None
        older = last if last is not None and any_beyond(ids < last) else None
    else:
        older = last if more else None
        newer = (
            first if before is not None and first is not None and any_beyond(ids > first) else None
        )
    return HistoryPage(items, older, newer, _count(session, phone))


def _count(session: Session, phone: str) -> int:
    return session.scalar(select(func.count()).where(col(Event.phone) == phone)) or 0
