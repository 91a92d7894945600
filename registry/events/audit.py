"""Verify the tamper-evident event log: per phone, each event's hash covers it and its predecessor.

The chain is in feed order (``seq``) and built by the sealer
(``registry.events.sealing``); events not sealed yet are not part of it.

An edit of any chained field, a deleted or inserted event in the middle of a
phone's history, or a reordering breaks the chain at the first affected event.
(Cutting off the newest events of a phone leaves a shorter valid chain: anchor
the heads elsewhere — e.g. publish ``heads()`` digests — to catch that too.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.events.models import Event
from registry.events.sealing import CHAINED, chain_hash

e = Event.__table__  # type: ignore[attr-defined]
_WALK = (
    select(e.c.id, e.c.prev_hash, e.c.hash, *(e.c[name] for name in CHAINED))
    .where(e.c.seq.is_not(None))  # an event is chained when it is sealed
    .order_by(e.c.phone, e.c.seq)
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


def verify(session: Session) -> Report:
    """Walk every phone's chain in feed order; stop at the first broken link."""
    result = session.execute(_WALK.execution_options(yield_per=5_000))
    try:
        return _walk(result)
    finally:
        result.close()  # a server-side cursor on PostgreSQL: close it even when we stop early


def _walk(rows: Iterable[Any]) -> Report:
    phones = events = 0
    phone = ""
    prev: str | None = None
    heads = hashlib.sha256()
    for row in rows:
        event_id, prev_hash, stored, *values = row
        fields = dict(zip(CHAINED, values, strict=True))
        if fields["phone"] != phone:
            if phone and prev is not None:
                heads.update(f"{phone}:{prev}\n".encode())
            phone, prev = fields["phone"], None
            phones += 1
        events += 1
        if stored is None:
            return Report(phones, events, BrokenLink(phone, event_id, "hash missing"), "")
        if prev_hash != prev:
            return Report(
                phones, events, BrokenLink(phone, event_id, "does not follow its predecessor"), ""
            )
        if chain_hash(fields, prev_hash) != stored:
            return Report(
                phones, events, BrokenLink(phone, event_id, "content does not match its hash"), ""
            )
        prev = stored
    if phone and prev is not None:
        heads.update(f"{phone}:{prev}\n".encode())
    return Report(phones, events, None, heads.hexdigest())
