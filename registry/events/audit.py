"""Verify the tamper-evident event log: per phone, each event's hash covers it and its predecessor.

An edit of any chained field, a deleted or inserted event in the middle of a
phone's history, or a reordering breaks the chain at the first affected event.
(Cutting off the newest events of a phone leaves a shorter valid chain: anchor
the heads elsewhere — e.g. publish ``heads()`` digests — to catch that too.)
Events from before the chain existed (no hash) may only open a phone's history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.events.models import Event
from registry.events.services import CHAINED, chain_hash

e = Event.__table__  # type: ignore[attr-defined]
_WALK = select(e.c.id, e.c.prev_hash, e.c.hash, *(e.c[name] for name in CHAINED)).order_by(
    e.c.phone, e.c.id
)


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first event whose chain does not hold, and why."""

    phone: str
    event_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of a walk: how much was checked, and the first broken link if any."""

    phones: int
    events: int
    broken: BrokenLink | None
    digest: str  # sha256 over every phone's head hash, in phone order


def _rows(session: Session, batch: int = 5_000) -> Iterator[tuple]:  # type: ignore[type-arg]
    result = session.execute(_WALK.execution_options(yield_per=batch))
    yield from result


def verify(session: Session) -> Report:
    """Walk every phone's chain in id order; stop at the first broken link."""
    phones = events = 0
    phone: str | None = None
    prev: str | None = None
    chained = False
    heads = hashlib.sha256()
    for row in _rows(session):
        event_id, prev_hash, stored, *values = row
        fields = dict(zip(CHAINED, values, strict=True))
        if fields["phone"] != phone:
            if phone is not None and prev is not None:
                heads.update(f"{phone}:{prev}\n".encode())
            phone, prev, chained = fields["phone"], None, False
            phones += 1
        events += 1
        if stored is None:
            if chained:
                return Report(phones, events, BrokenLink(phone, event_id, "hash missing"), "")
            continue  # written before the chain existed
        chained = True
        if prev_hash != prev:
            return Report(
                phones, events, BrokenLink(phone, event_id, "does not follow its predecessor"), ""
            )
        if chain_hash(fields, prev_hash) != stored:
            return Report(
                phones, events, BrokenLink(phone, event_id, "content does not match its hash"), ""
            )
        prev = stored
    if phone is not None and prev is not None:
        heads.update(f"{phone}:{prev}\n".encode())
    return Report(phones, events, None, heads.hexdigest())
