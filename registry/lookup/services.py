"""Who is calling me (号码标记): the registered sender behind a calling number.

Phone apps label incoming calls from crowd reports, which anyone can game;
the registry knows who answers for a calling number, because senders register
their addresses. ``lookup_caller`` is the one query from a calling number to
its sender, organization and the filed businesses using it, so that every
rule on which addresses count (when attestation by carriers lands: only
attested ones) is one line in one place.

Two audiences, two answers:

- a phone app (role ``lookup``, ``lookup_for_app``) gets the public part only:
  the sender, its organization, category, complaint count. It never learns
  whether or what the registry told any holder: a holder's records are not a
  phone app's to read, and no holder's number is an input;
- a holder signed in on the site (``lookup_for_holder``) gets the same and
  the personal part: whether that sender checked THEIR number, and what it
  was told.

The lookup is by calling number only and answers about senders, which are
public (their names are shown to holders): it never reveals a holder. Every
lookup is logged (``LookupLog``) and rate-limited at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry import phones
from registry.checks.history import checks_for_phone
from registry.complaints.models import Complaint
from registry.errors import InvalidPhoneError
from registry.lookup.models import LookupLog
from registry.orgs import filings
from registry.orgs.filings import Business
from registry.orgs.models import Organization
from registry.senders.models import Sender, SenderAddress
from registry.timeutil import utcnow

HOLDER_CHECKS = 20  # the latest checks of the holder's number by the sender, on the site


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """The public part of a lookup: who answers for a calling number."""

    address: str  # as registered
    sender_id: int
    sender_code: str
    sender_name: str
    category: str
    org_slug: str
    org_name: str
    org_kind: str
    suspended: bool
    complaints: int
    businesses: tuple[Business, ...] = ()  # filed outsourced businesses using the address


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup's answer: the number as normalised and the caller, None when unregistered."""

    number: str
    caller: CallerInfo | None
    checks: list[dict[str, Any]] = field(default_factory=list)  # the holder's, site only


def normalise(text: str, region: str) -> tuple[str, ...]:
    """Return the forms a calling number may be registered under; raise InvalidPhoneError."""
    try:
        return phones.calling_number_forms(text, region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="number") from exc


def lookup_caller(
    session: Session, address: str, region: str = "CN", now: datetime | None = None
) -> Lookup:
    """Return who answers for calling number ``address`` (any accepted form); log nothing."""
    forms = normalise(address, region)
    when = now or utcnow()
    row: Any = session.execute(
        select(
            col(SenderAddress.address),
            col(Sender.id),
            col(Sender.code),
            col(Sender.name),
            col(Sender.category),
            col(Organization.slug),
            col(Organization.name),
            col(Organization.kind),
            col(Sender.suspended_until),
            col(Organization.suspended_until),
            col(SenderAddress.suspended_until),
        )
        .join(Sender, col(Sender.id) == col(SenderAddress.sender_id))
        .join(Organization, col(Organization.id) == col(Sender.organization_id))
        .where(col(SenderAddress.address).in_(forms))
        # Only an address a carrier attested or a code proved, and not withdrawn (issue
        # 15): a claim nobody attested names no one (here and nowhere else).
        .where(
            col(SenderAddress.attested_at).is_not(None), col(SenderAddress.withdrawn_at).is_(None)
        )
        .order_by(col(SenderAddress.address))  # "+86..." sorts before the digits form
        .limit(1)
    ).first()
    if row is None:
        return Lookup(forms[0], None)
    complaints = session.scalar(
        select(func.count()).select_from(Complaint).where(col(Complaint.sender_id) == row[1])
    )
    suspended = any(u is not None and u > when for u in row[8:11])
    caller = CallerInfo(
        address=row[0],
        sender_id=row[1],
        sender_code=row[2],
        sender_name=row[3],
        category=row[4],
        org_slug=row[5],
        org_name=row[6],
        org_kind=row[7],
        suspended=suspended,
        complaints=int(complaints or 0),
        businesses=tuple(filings.by_address(session, row[0], when)),
    )
    return Lookup(forms[0], caller)


def _log(session: Session, answer: Lookup, via: str, org_id: int | None) -> None:
    session.add(
        LookupLog(
            address=answer.number[:32],
            via=via,
            organization_id=org_id,
            sender_id=answer.caller.sender_id if answer.caller else None,
        )
    )
    session.flush()


def lookup_for_app(session: Session, org_id: int, address: str, region: str) -> Lookup:
    """Answer a phone app (role ``lookup``): the public part only; log the lookup."""
    answer = lookup_caller(session, address, region)
    _log(session, answer, "api", org_id)
    return answer


def lookup_for_holder(session: Session, phone: str, address: str, region: str) -> Lookup:
    """Answer a signed-in holder: the public part and that sender's checks of THIS number."""
    answer = lookup_caller(session, address, region)
    _log(session, answer, "site", None)
    if answer.caller is None:
        return answer
    checks = checks_for_phone(session, phone, HOLDER_CHECKS, answer.caller.sender_id)
    filings.for_contacts(session, checks)
    return Lookup(answer.number, answer.caller, checks)


def recent(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Return the latest lookups, newest first, with the app and the sender found (the console)."""
    app = aliased(Organization)
    rows: Any = session.execute(
        select(
            col(LookupLog.looked_up_at),
            col(LookupLog.via),
            col(LookupLog.address),
            col(app.slug).label("app"),
            col(Sender.code).label("sender"),
        )
        .outerjoin(app, col(app.id) == col(LookupLog.organization_id))
        .outerjoin(Sender, col(Sender.id) == col(LookupLog.sender_id))
        .order_by(col(LookupLog.id).desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def counts(session: Session, since: datetime) -> list[dict[str, Any]]:
    """Return lookups since ``since`` per app (the site as None): total and found."""
    app = aliased(Organization)
    found = func.count(col(LookupLog.sender_id))
    rows: Any = session.execute(
        select(
            col(LookupLog.via),
            col(app.slug).label("app"),
            func.count().label("total"),
            found.label("found"),
        )
        .outerjoin(app, col(app.id) == col(LookupLog.organization_id))
        .where(col(LookupLog.looked_up_at) >= since)
        .group_by(col(LookupLog.via), col(app.slug))
        .order_by(func.count().desc())
    )
    return [dict(r._mapping) for r in rows]
