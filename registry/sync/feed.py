"""The change feed: every event, in feed order, read by scope (SPEC §4 Sync).

Feed numbers are given after commit by the sealer (``registry.events.sealing``
explains why that makes the feed ordered and gap-free for every reader). An
organization sees the changes of its own senders, those of senders delegated
to it with scope ``changes`` made since that delegation began, and preference
and disconnection changes of numbers on its watchlist made since the watch
began: never a number's or a principal's history from before (docs/sync.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from registry.errors import ValidationFailed
from registry.events import sealing
from registry.events.models import Event
from registry.orgs.models import Delegation, DelegationSender, Organization
from registry.senders.models import Sender
from registry.sync.models import Watch
from registry.timeutil import UTCDateTime, iso, utcnow

MAX_LIMIT = 1000
SEQUENCE_BATCH = 10_000
# Changes about the number itself rather than about one sender: shown only to
# organizations that watch the number (they already hold it).
NUMBER_TYPES = ("preferences.changed", "number.disconnected", "number.disconnection_retracted")
# Changes about an organization's standing (a suspension, a listing, their end):
# every carrier reads them, and the organization itself (docs/enforcement.md).
ORG_TYPES = ("organization.sanctioned", "organization.sanction_lifted")
# A complaint forwarded to an organization (registry/complaints/routing.py): read by it only.
FORWARDED = "complaint.forwarded"
e: Table = Event.__table__  # type: ignore[attr-defined]
sd: Table = Sender.__table__  # type: ignore[attr-defined]
wt: Table = Watch.__table__  # type: ignore[attr-defined]
dl: Table = Delegation.__table__  # type: ignore[attr-defined]
og: Table = Organization.__table__  # type: ignore[attr-defined]
ds: Table = DelegationSender.__table__  # type: ignore[attr-defined]
sequence = sealing.seal
last_seq = sealing.last_seq


def _live_grants(org_id: int) -> Select[Any]:
    """Return (sender id, since) for every live delegation to ``org_id`` with scope ``changes``."""
    return (
        select(ds.c.sender_id, dl.c.created_at)
        .join(dl, dl.c.id == ds.c.delegation_id)
        .where(
            ds.c.agent_id == org_id,
            dl.c.revoked_at.is_(None),
            or_(dl.c.expires_at.is_(None), dl.c.expires_at > literal(utcnow(), UTCDateTime())),
            dl.c.scopes.like("%changes%"),
        )
    )


def _in_scope(org_id: int, grants: Sequence[tuple[int, datetime]]) -> ColumnElement[bool]:
    """Return the condition on events ``org_id`` may read.

    Its own senders' events; a delegated sender's events from the moment the
    delegation began (``grants``: a handful per agent, so the page query stays
    one cheap test per row); a watched number's events from the moment the
    watch began. ``at`` is when the registry recorded each of these events.
    """
    own = select(sd.c.id).where(sd.c.organization_id == org_id)
    # Two tests for watched numbers: the uncorrelated ``IN`` is one hashed lookup
    # per row and keeps the per-row subquery for the few rows it lets through.
    watched = select(wt.c.phone).where(wt.c.organization_id == org_id)
    since_watch = (
        select(wt.c.phone)
        .where(
            wt.c.organization_id == org_id,
            wt.c.phone == e.c.phone,
            wt.c.created_at <= e.c.at,
        )
        .exists()
    )
    since: dict[int, datetime] = {}
    for sender_id, began in grants:  # the earliest live grant of each sender counts
        since[sender_id] = min(began, since.get(sender_id, began))
    delegated = [
        and_(e.c.sender_id == sender_id, e.c.at >= literal(began, UTCDateTime()))
        for sender_id, began in since.items()
    ]
    carrier = select(og.c.id).where(og.c.id == org_id, og.c.role == "carrier").exists()
    standing = and_(e.c.type.in_(ORG_TYPES), or_(carrier, e.c.organization_id == org_id))
    forwarded = and_(e.c.type == FORWARDED, e.c.organization_id == org_id)
    return or_(
        e.c.sender_id.in_(own),
        *delegated,
        and_(e.c.type.in_(NUMBER_TYPES), e.c.phone.in_(watched), since_watch),
        standing,
        forwarded,
    )


_PAGE_COLUMNS = (
    e.c.seq, e.c.type, e.c.phone, e.c.sender_id, e.c.channels, e.c.category, e.c.state,
    e.c.at, e.c.consent_id, e.c.data, e.c.organization_id, e.c.agent_id,
)  # fmt: skip


def _page_query(org_id: int, grants: Sequence[tuple[int, datetime]]) -> Select[Any]:
    # No joins: the page's few distinct senders and organizations are named by
    # ``_names`` afterwards; joining every row cost more than the scan.
    return (
        select(*_PAGE_COLUMNS)
        .where(and_(e.c.seq > bindparam("after"), _in_scope(org_id, grants)))
        .order_by(e.c.seq)
        .limit(bindparam("n"))
    )


@dataclass(frozen=True, slots=True)
class _Names:
    senders: dict[int, str]
    orgs: dict[int, str]


def _names(session: Session, rows: Sequence[Any]) -> _Names:
    """Return the codes and slugs of the senders and organizations a page names.

    Two small lookups by primary key for the page's distinct ids: cheaper than
    joining every row (measured: the joins were most of the page query).
    """
    senders = {r[3] for r in rows if r[3] is not None}
    orgs = ({r[10] for r in rows} | {r[11] for r in rows}) - {None}
    codes: dict[int, str] = {}
    slugs: dict[int, str] = {}
    if senders:
        query = select(sd.c.id, sd.c.code).where(sd.c.id.in_(senders))
        codes.update(session.execute(query).all())
    if orgs:
        query = select(og.c.id, og.c.slug).where(og.c.id.in_(orgs))
        slugs.update(session.execute(query).all())
    return _Names(codes, slugs)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the feed: its changes, the cursor to resume from, whether more wait."""

    changes: list[dict[str, Any]]
    next: int
    has_more: bool


def _item(row: Any, names: _Names) -> dict[str, Any]:
    seq, type_, phone, sender_id, channels, category, state, at, consent_id, data, org, agent = row
    item: dict[str, Any] = {
        "seq": seq,
        "type": type_,
        "phone": phone,
        "state": state,
        "at": iso(at),
    }
    if sender_id is not None:
        # A change of one of the reader's senders: say who recorded it.
        item["sender"] = names.senders[sender_id]
        if channels:
            item["channels"] = channels.split(",")
        if category:
            item["category"] = category
        if consent_id is not None:
            item["consent_id"] = consent_id
        if org is not None:
            item["organization"] = names.orgs[org]
        if agent is not None:
            item["agent"] = names.orgs[agent]
    elif type_ in ORG_TYPES and data:
        item["phone"] = None  # about an organization, not a number
        item["organization"] = names.orgs.get(org)
        item["sanction"] = {k: iso_text(v) for k, v in json.loads(data).items()}
    elif type_ == FORWARDED and data:
        # The complaint, as registry/complaints/routing.py ``forward_data`` wrote it.
        item["complaint"] = json.loads(data)
    elif type_ == "preferences.changed" and data:
        item["preferences"] = json.loads(data)
    elif type_ in ("number.disconnected", "number.disconnection_retracted") and data:
        detail = json.loads(data)
        item["disconnected_at"] = iso_text(detail.get("disconnected_at"))
        if org is not None:  # the carrier that reported it: the one who may speak for it
            item["carrier"] = names.orgs[org]
        if "by" in detail:  # a retraction: by that carrier, or by the regulator
            item["retracted_by"] = detail["by"]
    return item


def iso_text(value: Any) -> Any:
    """Return a stored time text as ISO 8601 with Z (events keep ``str(datetime)``)."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return value.replace(" ", "T").replace("+00:00", "Z")
    return value


def parse_cursor(after: str | None, limit: str | None) -> tuple[int, int]:
    """Validate ``after`` (a feed number, default 0) and ``limit`` (1 to 1000, default 100)."""
    # Absent means the default; present but empty (``?after=``) is not a number.
    try:
        a = int(after) if after is not None else 0
    except ValueError as exc:
        raise ValidationFailed("after must be a feed number (an integer)", field="after") from exc
    try:
        n = int(limit) if limit is not None else 100
    except ValueError as exc:
        raise ValidationFailed("limit must be an integer", field="limit") from exc
    if a < 0 or a > 2**62:
        raise ValidationFailed("after must be 0 or a feed number", field="after")
    if not 1 <= n <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return a, n


def read(session: Session, org_id: int, after: int, limit: int) -> Page:
    """Return the changes after ``after`` that ``org_id`` may see, oldest first.

    A short page moves ``next`` to the newest feed number rather than to its
    last change, so a reader whose changes are rare does not rescan the same
    stretch of other organizations' changes on every poll. That is safe:
    numbers up to the newest one, read *before* the page, are final (the
    sealer gives them contiguously, in one commit, in order), and a short page
    returned every change of the caller's after ``after`` that its snapshot saw.
    """
    top = last_seq(session)
    grants = [(r[0], r[1]) for r in session.execute(_live_grants(org_id))]
    rows = session.execute(_page_query(org_id, grants), {"after": after, "n": limit + 1}).all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = _names(session, rows)
    changes = [_item(r, names) for r in rows]
    if more:
        return Page(changes, changes[-1]["seq"], True)
    return Page(changes, max(top, after, changes[-1]["seq"] if changes else 0), False)
