"""Complaint handling statistics: times per organization, sector and intake; rates; overdue.

Each figure is one grouped SQL query over indexed columns (no ORM objects, no
per-complaint verdict): the console stays fast at a million complaints
(benchmarks/complaint_stats.py, docs/performance-stats.md). Duplicates
(``duplicate_of``) are never counted: a contact complained of twice is one
complaint. Times are in hours, averaged over the complaints that reached the
step; ``overdue`` counts routes flagged by the sweep or past their deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Date, and_, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.complaints.models import Complaint, ComplaintRoute
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.stats.models import StatDaily


@dataclass(frozen=True, slots=True)
class Handling:
    """How fast one group's complaints were handled."""

    key: str
    complaints: int
    ack_hours: float | None
    answer_hours: float | None
    close_hours: float | None
    overdue: int
    late: int = 0


def _hours(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Return ``later - earlier`` in hours, as SQL (julianday on SQLite, epoch on PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 24.0
    return func.extract("epoch", later - earlier) / 3600.0


def _period(column: Any, start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if start is not None:
        out.append(column >= datetime.combine(start, time(), UTC))
    if end is not None:
        out.append(column < datetime.combine(end, time(), UTC))
    return out


def _round(v: Any) -> float | None:
    return round(float(v), 1) if v is not None else None


def by_org(
    session: Session, today: date, start: date | None = None, end: date | None = None
) -> list[Handling]:
    """Return handling per organization routed to (merchant, agent, carrier), busiest first."""
    c, r = Complaint, ComplaintRoute
    overdue = or_(
        col(r.overdue_at).is_not(None), and_(col(r.answered_at).is_(None), col(r.due_on) < today)
    )
    rows = session.execute(
        select(
            col(Organization.slug),
            func.count(),
            func.avg(_hours(session, col(c.acknowledged_at), col(c.created_at))),
            func.avg(_hours(session, col(r.answered_at), col(r.forwarded_at))),
            func.avg(_hours(session, col(c.closed_at), col(c.created_at))),
            func.count().filter(overdue),
            func.count().filter(col(r.late).is_(True)),
        )
        .select_from(r)
        .join(c, col(c.id) == col(r.complaint_id))
        .join(Organization, col(Organization.id) == col(r.organization_id))
        .where(*_period(col(r.forwarded_at), start, end))
        .group_by(col(Organization.slug))
        .order_by(func.count().desc(), col(Organization.slug))
        .limit(100)
    ).all()
    return [Handling(str(k), int(n), _round(a), _round(b), _round(z), int(o), int(lt))
            for k, n, a, b, z, o, lt in rows]  # fmt: skip


def by_column(
    session: Session, column: str, start: date | None = None, end: date | None = None
) -> list[Handling]:
    """Return handling per sector or per channel of intake (``column``: sector | intake)."""
    c = Complaint
    key = col(c.sector) if column == "sector" else col(c.intake)
    rows = session.execute(
        select(
            func.coalesce(key, "—"),
            func.count(),
            func.avg(_hours(session, col(c.acknowledged_at), col(c.created_at))),
            func.avg(_hours(session, col(c.answered_at), col(c.created_at))),
            func.avg(_hours(session, col(c.closed_at), col(c.created_at))),
            func.count().filter(col(c.escalated_at).is_not(None)),
        )
        .where(col(c.duplicate_of).is_(None), *_period(col(c.created_at), start, end))
        .group_by(key)
        .order_by(func.count().desc())
    ).all()
    return [Handling(str(k), int(n), _round(a), _round(b), _round(z), int(o))
            for k, n, a, b, z, o in rows]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rate:
    """Complaints per 10,000 checks for one organization or category."""

    key: str
    complaints: int
    checks: int

    @property
    def per_10k(self) -> float | None:
        """Return complaints per 10,000 checks (None without checks)."""
        return round(10_000 * self.complaints / self.checks, 2) if self.checks else None


def _checks(session: Session, metric: str, start: date | None, end: date | None) -> dict[str, int]:
    day = col(StatDaily.day)
    where = [col(StatDaily.metric) == metric]
    if start is not None:
        where.append(day >= start)
    if end is not None:
        where.append(day < end)
    return {
        str(k): int(n)
        for k, n in session.execute(
            select(col(StatDaily.key1), func.sum(col(StatDaily.value)))
            .where(*where)
            .group_by(col(StatDaily.key1))
        )
    }


def rates_by_org(
    session: Session, start: date | None = None, end: date | None = None
) -> list[Rate]:
    """Return complaints (against the sender's organization) per 10,000 of its checks."""
    checks = _checks(session, "checks", start, end)
    rows = session.execute(
        select(col(Complaint.organization_id), col(Organization.slug), func.count())
        .select_from(Complaint)
        .join(Organization, col(Organization.id) == col(Complaint.organization_id))
        .where(
            col(Complaint.duplicate_of).is_(None), *_period(col(Complaint.created_at), start, end)
        )
        .group_by(col(Complaint.organization_id), col(Organization.slug))
    ).all()
    out = [Rate(slug, int(n), checks.get(str(org_id), 0)) for org_id, slug, n in rows]
    out.sort(key=lambda r: (-(r.per_10k or 0), -r.complaints, r.key))
    return out[:100]


def rates_by_category(
    session: Session, start: date | None = None, end: date | None = None
) -> list[Rate]:
    """Return complaints per 10,000 checks per industry (the sender's category)."""
    checks = _checks(session, "checks_category", start, end)
    rows = session.execute(
        select(col(Sender.category), func.count())
        .select_from(Complaint)
        .join(Sender, col(Sender.id) == col(Complaint.sender_id))
        .where(
            col(Complaint.duplicate_of).is_(None), *_period(col(Complaint.created_at), start, end)
        )
        .group_by(col(Sender.category))
    ).all()
    found = {str(k): int(n) for k, n in rows}
    out = [Rate(k, found.get(k, 0), checks.get(k, 0)) for k in sorted(set(found) | set(checks))]
    out.sort(key=lambda r: (-(r.per_10k or 0), -r.complaints, r.key))
    return out


def overdue_by_day(
    session: Session, start: date | None = None, end: date | None = None
) -> list[tuple[str, int]]:
    """Return how many routes fell overdue per deadline day (the day after ``due_on``)."""
    rows = session.execute(
        select(cast(col(ComplaintRoute.due_on), Date), func.count())
        .where(col(ComplaintRoute.overdue_at).is_not(None),
               *_period(col(ComplaintRoute.forwarded_at), start, end))
        .group_by(cast(col(ComplaintRoute.due_on), Date))
        .order_by(cast(col(ComplaintRoute.due_on), Date))
    ).all()  # fmt: skip
    return [(str(d), int(n)) for d, n in rows]
