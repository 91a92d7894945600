"""Number ranges (号段): which carrier speaks for which numbers.

The regulator assigns E.164 prefixes to carrier organizations. A host carrier
may sub-assign a longer prefix inside one of its own ranges to an MVNO (one
level: an MVNO does not sub-assign further). Who holds a number is decided by
the longest live prefix that starts it, so an MVNO's sub-range speaks for its
numbers and the host no longer does: one voice per number, never two
carriers contradicting each other about the same line. The host gets the
numbers back by revoking the sub-assignment.

Two live ranges never overlap at the same level: between the regulator's
ranges none is a prefix of another, and the same holds between the
sub-assignments made inside one host range. A number outside every range has
no carrier in the registry: nobody may report it disconnected.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.numbers.models import NumberRange
from registry.orgs.models import Organization
from registry.timeutil import utcnow

MAX_DIGITS = 15  # E.164


class NotYourNumber(Forbidden):
    """The number is not in a range the reporting carrier holds."""

    code = "not_your_number"


def parse_prefix(text: str) -> str:
    """Return a prefix as ``+`` and digits, starting with a real country calling code."""
    if not isinstance(text, str):
        raise ValidationFailed("a prefix is text such as +86138", field="prefix")
    cleaned = "".join(unicodedata.normalize("NFKC", text).split()).replace("-", "")
    digits = cleaned[1:]
    if not cleaned.startswith("+") or not digits.isascii() or not digits.isdigit():
        raise ValidationFailed("a prefix is + followed by digits, e.g. +86138", field="prefix")
    if len(digits) > MAX_DIGITS:
        raise ValidationFailed(f"a prefix has at most {MAX_DIGITS} digits", field="prefix")
    # Country codes are prefix-free: at most one of the first 1 to 3 digits is one.
    if digits[0] == "0" or not any(
        int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        for n in range(1, min(3, len(digits)) + 1)
    ):
        raise ValidationFailed(
            f"{cleaned} does not start with a country calling code", field="prefix"
        )
    return cleaned


def candidates(phone: str) -> list[str]:
    """Return every prefix of an E.164 number that a range could have, longest first."""
    return [phone[:n] for n in range(len(phone), 1, -1)]


@dataclass(frozen=True, slots=True)
class Holder:
    """The range that holds a number and its carrier."""

    range_id: int
    prefix: str
    organization_id: int


_r = NumberRange.__table__  # type: ignore[attr-defined]
# All candidates are prefixes of one number: the longer sorts after, so first in desc.
_HOLDER = (
    select(_r.c.id, _r.c.prefix, _r.c.organization_id)
    .where(_r.c.prefix.in_(bindparam("candidates", expanding=True)), _r.c.revoked_at.is_(None))
    .order_by(_r.c.prefix.desc())
    .limit(1)
)


def holder_of(session: Session, phone: str) -> Holder | None:
    """Return the live range with the longest prefix of ``phone``, or None.

    One indexed lookup (the number's own prefixes, against the unique index on
    live prefixes), as a Core statement: a carrier's report makes one per row.
    """
    row = session.connection().execute(_HOLDER, {"candidates": candidates(phone)}).first()
    return Holder(row[0], row[1], row[2]) if row is not None else None


def _carrier(session: Session, slug: str) -> Organization:
    org = session.scalar(select(Organization).where(col(Organization.slug) == slug.strip()))
    if org is None:
        raise NotFound(f"no organization {slug!r}", field="carrier")
    if org.role != "carrier":
        raise ValidationFailed(f"{org.slug} is not a carrier (role {org.role})", field="carrier")
    return org


def _overlapping(session: Session, prefix: str, parent_id: int | None) -> NumberRange | None:
    """Return a live range at the same level that contains or lies inside ``prefix``."""
    parent = (
        col(NumberRange.parent_id).is_(None)
        if parent_id is None
        else col(NumberRange.parent_id) == parent_id
    )
    live = select(NumberRange).where(parent, col(NumberRange.revoked_at).is_(None))
    around = session.scalar(live.where(col(NumberRange.prefix).in_(candidates(prefix))))
    if around is not None:
        return around
    return session.scalar(live.where(col(NumberRange.prefix).startswith(prefix, autoescape=True)))


def _insert(session: Session, row: NumberRange) -> NumberRange:
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:  # the same prefix, assigned at the same moment
        raise Conflict(f"{row.prefix} is already assigned", field="prefix") from exc
    return row


def assign(session: Session, prefix: str, carrier: str, by: str) -> NumberRange:
    """Assign ``prefix`` to the carrier ``carrier`` (the regulator's act)."""
    clean = parse_prefix(prefix)
    org = _carrier(session, carrier)
    clash = _overlapping(session, clean, None)
    if clash is not None:
        raise Conflict(
            f"{clean} overlaps the range {clash.prefix} already assigned", field="prefix"
        )
    return _insert(session, NumberRange(prefix=clean, organization_id=org.id or 0, assigned_by=by))


def sub_assign(session: Session, host_id: int, prefix: str, mvno: str, by: str) -> NumberRange:
    """Sub-assign ``prefix``, inside one of the host's own ranges, to the carrier ``mvno``."""
    clean = parse_prefix(prefix)
    org = _carrier(session, mvno)
    if org.id == host_id:
        raise ValidationFailed("a carrier cannot sub-assign a range to itself", field="carrier")
    parent = session.scalar(
        select(NumberRange).where(
            col(NumberRange.prefix).in_(candidates(clean)[1:]),  # strictly shorter
            col(NumberRange.organization_id) == host_id,
            col(NumberRange.parent_id).is_(None),
            col(NumberRange.revoked_at).is_(None),
        )
    )
    if parent is None:
        raise Forbidden(
            f"{clean} is not inside a range the regulator assigned to you", field="prefix"
        )
    clash = _overlapping(session, clean, parent.id)
    if clash is not None:
        raise Conflict(f"{clean} overlaps the sub-range {clash.prefix}", field="prefix")
    return _insert(
        session,
        NumberRange(prefix=clean, organization_id=org.id or 0, parent_id=parent.id, assigned_by=by),
    )


def revoke(session: Session, range_id: int, by: str, host_id: int | None = None) -> NumberRange:
    """Revoke a range and its sub-assignments; with ``host_id``, only a sub-assignment it made."""
    row = session.get(NumberRange, range_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no range {range_id}")
    if host_id is not None:
        parent = session.get(NumberRange, row.parent_id) if row.parent_id else None
        if parent is None or parent.organization_id != host_id:
            raise Forbidden("you may revoke only the sub-assignments of your own ranges")
    if row.revoked_at is not None:
        raise Conflict(f"the range {row.prefix} is already revoked")
    now = utcnow()
    children = session.scalars(
        select(NumberRange).where(
            col(NumberRange.parent_id) == range_id, col(NumberRange.revoked_at).is_(None)
        )
    ).all()
    for r in (row, *children):
        r.revoked_at, r.revoked_by = now, by
    session.flush()
    return row


def find(session: Session, prefix: str) -> NumberRange:
    """Return the live range with exactly this prefix, or raise NotFound."""
    clean = parse_prefix(prefix)
    row = session.scalar(
        select(NumberRange).where(
            col(NumberRange.prefix) == clean, col(NumberRange.revoked_at).is_(None)
        )
    )
    if row is None:
        raise NotFound(f"no live range {clean}", field="prefix")
    return row


@dataclass(frozen=True, slots=True)
class RangeRow:
    """A range as lists show it: its carrier, and the host it was sub-assigned by."""

    id: int
    prefix: str
    carrier: str
    host: str | None
    host_prefix: str | None
    assigned_by: str
    created_at: datetime
    revoked_at: datetime | None


def list_ranges(
    session: Session, org_id: int | None = None, include_revoked: bool = False
) -> list[RangeRow]:
    """Return ranges in prefix order; with ``org_id``, those it holds or sub-assigned."""
    parent = aliased(NumberRange)
    holder = aliased(Organization)
    host = aliased(Organization)
    query = (
        select(NumberRange, col(holder.slug), col(host.slug), col(parent.prefix))
        .join(holder, col(holder.id) == col(NumberRange.organization_id))
        .outerjoin(parent, col(parent.id) == col(NumberRange.parent_id))
        .outerjoin(host, col(host.id) == col(parent.organization_id))
        .order_by(col(NumberRange.prefix), col(NumberRange.id))
    )
    if not include_revoked:
        query = query.where(col(NumberRange.revoked_at).is_(None))
    if org_id is not None:
        query = query.where(
            (col(NumberRange.organization_id) == org_id) | (col(parent.organization_id) == org_id)
        )
    return [
        RangeRow(
            r.id or 0,
            r.prefix,
            slug,
            host_slug,
            host_prefix,
            r.assigned_by,
            r.created_at,
            r.revoked_at,
        )
        for r, slug, host_slug, host_prefix in session.execute(query)
    ]
