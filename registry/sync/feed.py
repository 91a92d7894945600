"""The change feed: every event, numbered in commit order, read by scope.

Why the sequence is given after commit, and not by the writer
-------------------------------------------------------------
A reader pages with ``seq > after``. If writers took their feed number when
they wrote (an autoincrement id, a database sequence), two transactions could
take 7 and 8, 8 could commit first, a reader could read 8 and move its cursor
past 7 — and when 7 commits it is never seen. So writers leave ``seq`` empty.
The *sequencer* numbers events afterwards: under one lock (a transaction-scoped
advisory lock on PostgreSQL; SQLite serializes writers already), it reads the
committed events that have no number yet, in id order, and gives them
``max(seq) + 1, + 2, ...``. An event that commits late is simply numbered by a
later run, *after* everything a reader may already have seen. Numbers become
visible atomically when the sequencer commits, and runs are serialized, so a
reader never sees ``seq = n + 1`` before ``n``: the feed is ordered and
gap-free for every reader, whatever the writers' timing.

We chose this over PostgreSQL snapshot horizons (``pg_snapshot_xmin``) because
it works the same on SQLite and PostgreSQL, keeps the cursor a plain integer,
and leaves the writers' hot path untouched: a write costs nothing extra. The
price is latency: a change appears in the feed when the sequencer next runs —
the ``registry worker`` runs it continuously, and a feed read runs it too when
no one else is (``try`` lock, so readers never queue behind each other).

Scope (SPEC §4): an organization sees the changes of its own senders, and
preference and disconnection changes only for numbers on its watchlist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from registry.errors import ValidationFailed
from registry.events.models import Event
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.sync.models import Watch
from registry.timeutil import iso

MAX_LIMIT = 1000
SEQUENCE_BATCH = 10_000
# Changes about the number itself rather than about one sender: shown only to
# organizations that watch the number (they already hold it).
NUMBER_TYPES = ("preferences.changed", "number.disconnected")
SEQUENCER_LOCK = 0x616F  # advisory lock id on PostgreSQL

e = Event.__table__  # type: ignore[attr-defined]
_PENDING = select(e.c.id).where(e.c.seq.is_(None)).order_by(e.c.id).limit(bindparam("n"))
_TOP = select(func.max(e.c.seq))
_NUMBER = update(e).where(e.c.id == bindparam("eid")).values(seq=bindparam("s"))


def sequence(session: Session, *, wait: bool = True, batch: int = SEQUENCE_BATCH) -> int:
    """Number committed, unnumbered events in id order; return how many (commit is the caller's).

    With ``wait=False`` on PostgreSQL, return 0 at once when another
    transaction is sequencing (a reader then just reads what is numbered).
    """
    if session.get_bind().dialect.name == "postgresql":
        if wait:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEQUENCER_LOCK})
        elif not session.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEQUENCER_LOCK}
        ).scalar():
            return 0
    pending = session.execute(_PENDING, {"n": batch}).scalars().all()
    if not pending:
        return 0
    top = session.execute(_TOP).scalar() or 0
    session.execute(_NUMBER, [{"eid": eid, "s": top + i} for i, eid in enumerate(pending, 1)])
    return len(pending)


def last_seq(session: Session) -> int:
    """Return the newest feed number (0 for an empty registry)."""
    return int(session.execute(_TOP).scalar() or 0)


def scope_senders(org_id: int) -> Select[Any]:
    """Return the ids of the senders whose changes ``org_id`` sees.

    Today: the senders it owns. Delegations extend this with a UNION of the
    senders delegated to it with scope ``changes`` (see
    ``registry.senders.services.resolve_sender``); the feed query needs no
    other change.
    """
    return select(Sender.id).where(Sender.organization_id == org_id)  # type: ignore[arg-type]


def _in_scope(org_id: int) -> ColumnElement[bool]:
    watched = select(Watch.phone).where(Watch.organization_id == org_id)  # type: ignore[arg-type]
    return or_(
        e.c.sender_id.in_(scope_senders(org_id)),
        and_(e.c.type.in_(NUMBER_TYPES), e.c.phone.in_(watched)),
    )


_principal = aliased(Organization)
_agent = aliased(Organization)


def _page_query(org_id: int) -> Select[Any]:
    return (
        select(
            e.c.seq,
            e.c.type,
            e.c.phone,
            Sender.code,
            e.c.channels,
            e.c.category,
            e.c.state,
            e.c.at,
            e.c.consent_id,
            e.c.data,
            _principal.slug,
            _agent.slug,
        )
        .select_from(e)
        .outerjoin(Sender, Sender.id == e.c.sender_id)  # type: ignore[arg-type]
        .outerjoin(_principal, _principal.id == e.c.organization_id)  # type: ignore[arg-type]
        .outerjoin(_agent, _agent.id == e.c.agent_id)  # type: ignore[arg-type]
        .where(and_(e.c.seq > bindparam("after"), _in_scope(org_id)))
        .order_by(e.c.seq)
        .limit(bindparam("n"))
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the feed: its changes, the cursor to resume from, whether more wait."""

    changes: list[dict[str, Any]]
    next: int
    has_more: bool


def _item(row: Any) -> dict[str, Any]:
    seq, type_, phone, sender, channels, category, state, at, consent_id, data, org, agent = row
    item: dict[str, Any] = {
        "seq": seq,
        "type": type_,
        "phone": phone,
        "state": state,
        "at": iso(at),
    }
    if sender is not None:
        # A change of one of the reader's senders: say who recorded it.
        item["sender"] = sender
        if channels:
            item["channels"] = channels.split(",")
        if category:
            item["category"] = category
        if consent_id is not None:
            item["consent_id"] = consent_id
        if org is not None:
            item["organization"] = org
        if agent is not None:
            item["agent"] = agent
    elif type_ == "preferences.changed" and data:
        item["preferences"] = json.loads(data)
    elif type_ == "number.disconnected" and data:
        item["disconnected_at"] = iso_text(json.loads(data).get("disconnected_at"))
    return item


def iso_text(value: Any) -> Any:
    """Return a stored time text as ISO 8601 with Z (events keep ``str(datetime)``)."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return value.replace(" ", "T").replace("+00:00", "Z")
    return value


def parse_cursor(after: str | None, limit: str | None) -> tuple[int, int]:
    """Validate ``after`` (a feed number, default 0) and ``limit`` (1 to 1000, default 100)."""
    try:
        a = int(after) if after not in (None, "") else 0
    except ValueError as exc:
        raise ValidationFailed("after must be a feed number (an integer)", field="after") from exc
    try:
        n = int(limit) if limit not in (None, "") else 100
    except ValueError as exc:
        raise ValidationFailed("limit must be an integer", field="limit") from exc
    if a < 0 or a > 2**62:
        raise ValidationFailed("after must be 0 or a feed number", field="after")
    if not 1 <= n <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return a, n


def read(session: Session, org_id: int, after: int, limit: int) -> Page:
    """Return the changes after ``after`` that ``org_id`` may see, oldest first."""
    rows = session.execute(_page_query(org_id), {"after": after, "n": limit + 1}).all()
    more = len(rows) > limit
    changes = [_item(r) for r in rows[:limit]]
    return Page(changes, changes[-1]["seq"] if changes else after, more)
