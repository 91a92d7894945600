"""An organization's compliance view: the complaints routed to it, answers due, its sanctions.

Read through the API by the organization itself (registry/api/complaints.py);
it sees only what was routed to it, and the sanctions against it, and may
appeal one of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.audit import services as audit
from registry.complaints import deadlines
from registry.complaints.models import Complaint, ComplaintRoute
from registry.config import Settings
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.sanctions.models import Sanction, SanctionAppeal

MAX_ITEMS = 500


def _route_item(
    c: Complaint, r: ComplaintRoute, settings: Settings, now: datetime
) -> dict[str, Any]:
    return {
        "id": c.id,
        "reference": c.reference,
        "role": r.role,
        "type": c.type,
        "intake": c.intake,
        "address": c.address,
        "channel": c.channel,
        "contacted_at": c.contacted_at,
        "text": c.text,
        "verdict": c.verdict,
        "status": c.status,
        "forwarded_at": r.forwarded_at,
        "due_on": r.due_on.isoformat(),
        "answered_at": r.answered_at,
        "late": r.late,
        "overdue": deadlines.is_overdue(r.due_on, r.answered_at, now, settings.tz)
        or r.overdue_at is not None,
        "action": r.action,
        "dispute_valid": r.dispute_valid,
    }


def routed_to(
    session: Session, settings: Settings, org_id: int, now: datetime, *, due_only: bool = False
) -> list[dict[str, Any]]:
    """Return the complaints routed to ``org_id``, newest first (or those still to answer)."""
    query = (
        select(Complaint, ComplaintRoute)
        .join(ComplaintRoute, col(ComplaintRoute.complaint_id) == col(Complaint.id))
        .where(col(ComplaintRoute.organization_id) == org_id)
    )
    if due_only:
        query = query.where(col(ComplaintRoute.answered_at).is_(None)).order_by(
            col(ComplaintRoute.due_on), col(Complaint.id)
        )
    else:
        query = query.order_by(col(Complaint.id).desc())
    rows = session.execute(query.limit(MAX_ITEMS)).all()
    return [_route_item(c, r, settings, now) for c, r in rows]


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of an organization's compliance view."""

    complaints: int
    verdicts: dict[str, int]
    answers_due: int
    overdue: int
    late: int


def summary(session: Session, settings: Settings, org_id: int, now: datetime) -> Summary:
    """Return the counts of the complaints routed to ``org_id``."""
    base = (
        select(col(Complaint.verdict), func.count())
        .join(ComplaintRoute, col(ComplaintRoute.complaint_id) == col(Complaint.id))
        .where(col(ComplaintRoute.organization_id) == org_id)
        .group_by(col(Complaint.verdict))
    )
    verdicts = {str(v): int(n) for v, n in session.execute(base).all()}
    today = deadlines.local_day(now, settings.tz)
    mine = select(ComplaintRoute).where(col(ComplaintRoute.organization_id) == org_id).subquery()
    due, overdue, late = session.execute(
        select(
            func.count().filter(mine.c.answered_at.is_(None)),
            func.count().filter(
                (mine.c.overdue_at.is_not(None))
                | ((mine.c.answered_at.is_(None)) & (mine.c.due_on < today))
            ),
            func.count().filter(mine.c.late.is_(True)),
        ).select_from(mine)
    ).one()
    return Summary(sum(verdicts.values()), verdicts, int(due), int(overdue), int(late))


def sanctions_of(session: Session, org_id: int) -> list[dict[str, Any]]:
    """Return the sanctions against ``org_id`` with their appeals, newest first."""
    rows = session.scalars(
        select(Sanction)
        .where(col(Sanction.organization_id) == org_id)
        .order_by(col(Sanction.id).desc())
    ).all()
    appeals: dict[int, SanctionAppeal] = {
        a.sanction_id: a
        for a in session.scalars(
            select(SanctionAppeal).where(col(SanctionAppeal.organization_id) == org_id)
        )
    }
    return [
        {
            "id": s.id,
            "kind": s.kind,
            "reason": s.reason,
            "starts_at": s.starts_at,
            "ends_at": s.ends_at,
            "lifted_at": s.lifted_at,
            "appeal": appeals[s.id].status if s.id in appeals else None,
        }
        for s in rows
    ]


def appeal(
    session: Session, org_id: int, org_slug: str, sanction_id: int, grounds: str
) -> SanctionAppeal:
    """Appeal a sanction against one's own organization, once; the caller commits."""
    sanction = session.get(Sanction, sanction_id)
    if sanction is None or sanction.organization_id != org_id:
        raise NotFound(f"no sanction {sanction_id} against your organization")
    grounds = grounds.strip()
    if not grounds:
        raise ValidationFailed("say on what grounds you appeal", field="grounds")
    if session.scalar(select(func.count()).where(col(SanctionAppeal.sanction_id) == sanction_id)):
        raise Conflict("this sanction is already under appeal")
    row = SanctionAppeal(sanction_id=sanction_id, organization_id=org_id, grounds=grounds[:4000])
    session.add(row)
    session.flush()
    audit.record(session, None, "sanction.appeal", f"sanction:{sanction_id}",
                 {"appeal": row.id}, actor=f"org:{org_slug}")  # fmt: skip
    return row
