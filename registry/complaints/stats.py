"""Complaint handling statistics: times per organization, sector and intake; rates; overdue.

Read from rollups, like every statistics page (registry/stats/services.py):
``refresh`` recomputes them from the complaint and route tables in a few
grouped queries (``registry stats refresh``, and the worker), and the pages
sum a few thousand ``stat_daily`` rows instead of aggregating a million
complaints on every request (benchmarks/complaint_stats.py,
docs/performance-stats.md). Complaints change after they are filed (answered,
closed, overdue), so the rollup is recomputed whole rather than added to;
at a million complaints that takes seconds, off-request.

Metrics, per day of filing (a route: of forwarding) and key:
``complaint_org`` (key: organization slug, per route), ``complaint_sector``,
``complaint_intake``, ``complaint_category`` (the sender's); ``key2`` is the
field: ``n``, ``ack_s``/``ack_n`` (seconds to acknowledge, summed, and how
many were), ``answer_s``/``answer_n``, ``close_s``/``close_n``, ``overdue``,
``late``; ``complaint_rate_org`` (key: the sender's organization id, field ``n``) for
the rates per 10,000 checks. Duplicates (``duplicate_of``) are never counted: a contact
complained of twice is one complaint.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.complaints.models import Complaint, ComplaintRoute
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.stats.models import StatDaily

METRICS = ("complaint_org", "complaint_sector", "complaint_intake", "complaint_category")
FIELDS = ("n", "ack_s", "ack_n", "answer_s", "answer_n", "close_s", "close_n", "overdue", "late")


def _seconds(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Return ``later - earlier`` in seconds, as SQL (julianday on SQLite, epoch on PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def refresh(session: Session) -> int:
    """Recompute the complaint rollups; return how many rows they hold. The caller commits."""
    c, r = Complaint, ComplaintRoute
    ack = _seconds(session, col(c.acknowledged_at), col(c.created_at))
    close = _seconds(session, col(c.closed_at), col(c.created_at))
    live = col(c.duplicate_of).is_(None)
    rows: list[dict[str, Any]] = []

    def add(metric: str, result: Any) -> None:
        for d, key, *values in result:
            for name, v in zip(FIELDS, values, strict=True):
                if v:
                    rows.append({"metric": metric, "day": _day(d), "key1": str(key or "—")[:64],
                                 "key2": name, "value": round(float(v))})  # fmt: skip

    # Overdue: flagged by the sweep (registry/complaints/routing.py), which counts the
    # deadline in working days in the registry's time zone; the worker sweeps first.
    overdue = col(r.overdue_at).is_not(None)
    fday = func.date(col(r.forwarded_at))
    add("complaint_org", session.execute(
        select(
            fday, col(Organization.slug), func.count(), func.sum(ack), func.count(col(c.acknowledged_at)),
            func.sum(_seconds(session, col(r.answered_at), col(r.forwarded_at))),
            func.count(col(r.answered_at)), func.sum(close), func.count(col(c.closed_at)),
            func.count().filter(overdue), func.count().filter(col(r.late).is_(True)),
        )
        .select_from(r)
        .join(c, col(c.id) == col(r.complaint_id))
        .join(Organization, col(Organization.id) == col(r.organization_id))
        .group_by(fday, col(Organization.slug))
    ))  # fmt: skip
    cday = func.date(col(c.created_at))
    answer = _seconds(session, col(c.answered_at), col(c.created_at))
    escalated = func.count().filter(col(c.escalated_at).is_not(None))
    for metric, key in (("complaint_sector", col(c.sector)), ("complaint_intake", col(c.intake))):
        add(metric, session.execute(
            select(cday, key, func.count(), func.sum(ack), func.count(col(c.acknowledged_at)),
                   func.sum(answer), func.count(col(c.answered_at)), func.sum(close),
                   func.count(col(c.closed_at)), escalated, func.sum(0))
            .where(live)
            .group_by(cday, key)
        ))  # fmt: skip
    add("complaint_category", session.execute(
        select(cday, col(Sender.category), func.count(), func.sum(ack),
               func.count(col(c.acknowledged_at)), func.sum(answer), func.count(col(c.answered_at)),
               func.sum(close), func.count(col(c.closed_at)), escalated, func.sum(0))
        .select_from(c)
        .join(Sender, col(Sender.id) == col(c.sender_id))
        .where(live)
        .group_by(cday, col(Sender.category))
    ))  # fmt: skip
    # The organization a complaint counts against for the rates: the sender's (once per complaint).
    add("complaint_rate_org", session.execute(
        select(cday, col(c.organization_id), func.count(), *(func.sum(0) for _ in FIELDS[1:]))
        .where(live, col(c.organization_id).is_not(None))
        .group_by(cday, col(c.organization_id))
    ))  # fmt: skip
    session.execute(
        delete(StatDaily).where(col(StatDaily.metric).in_((*METRICS, "complaint_rate_org")))
    )
    for start in range(0, len(rows), 5000):
        session.execute(insert(StatDaily), rows[start : start + 5000])
    return len(rows)


def _sums(
    session: Session, metric: str, start: date | None, end: date | None
) -> dict[str, dict[str, int]]:
    where = [col(StatDaily.metric) == metric]
    if start is not None:
        where.append(col(StatDaily.day) >= start)
    if end is not None:
        where.append(col(StatDaily.day) < end)
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for k1, k2, v in session.execute(
        select(col(StatDaily.key1), col(StatDaily.key2), func.sum(col(StatDaily.value)))
        .where(*where)
        .group_by(col(StatDaily.key1), col(StatDaily.key2))
    ):
        out[str(k1)][str(k2)] = int(v)
    return out


@dataclass(frozen=True, slots=True)
class Handling:
    """How fast one group's complaints were handled (hours, averaged over those that got there)."""

    key: str
    complaints: int
    ack_hours: float | None
    answer_hours: float | None
    close_hours: float | None
    overdue: int
    late: int = 0


def _avg(f: dict[str, int], name: str) -> float | None:
    n = f.get(f"{name}_n", 0)
    return round(f.get(f"{name}_s", 0) / n / 3600, 1) if n else None


def handling(
    session: Session, metric: str, start: date | None = None, end: date | None = None
) -> list[Handling]:
    """Return handling per key of ``metric`` (complaint_org, _sector, _intake), busiest first."""
    sums = _sums(session, metric, start, end)
    out = [
        Handling(k, f.get("n", 0), _avg(f, "ack"), _avg(f, "answer"), _avg(f, "close"),
                 f.get("overdue", 0), f.get("late", 0))
        for k, f in sums.items()
    ]  # fmt: skip
    out.sort(key=lambda h: (-h.complaints, h.key))
    return out[:100]


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
    return {k: sum(f.values()) for k, f in _sums(session, metric, start, end).items()}


def _ranked(rates: list[Rate]) -> list[Rate]:
    rates.sort(key=lambda r: (-(r.per_10k or 0), -r.complaints, r.key))
    return rates[:100]


def rates_by_org(
    session: Session, start: date | None = None, end: date | None = None
) -> list[Rate]:
    """Return complaints (against the sender's organization) per 10,000 of its checks."""
    checks = _checks(session, "checks", start, end)  # key1: organization id
    found = {k: f.get("n", 0) for k, f in _sums(session, "complaint_rate_org", start, end).items()}
    ids = {int(k) for k in set(found) | set(checks) if k.isdigit()}
    slugs = dict(session.execute(
        select(col(Organization.id), col(Organization.slug)).where(col(Organization.id).in_(ids))
    ).all())  # fmt: skip
    return _ranked([Rate(str(slugs.get(int(k), k)), found.get(k, 0), checks.get(k, 0))
                    for k in sorted(set(found) | set(checks))])  # fmt: skip


def rates_by_category(
    session: Session, start: date | None = None, end: date | None = None
) -> list[Rate]:
    """Return complaints per 10,000 checks per industry (the sender's category)."""
    checks = _checks(session, "checks_category", start, end)
    found = {k: f.get("n", 0) for k, f in _sums(session, "complaint_category", start, end).items()}
    return _ranked([Rate(k, found.get(k, 0), checks.get(k, 0))
                    for k in sorted(set(found) | set(checks))])  # fmt: skip


def overdue_by_org(
    session: Session, start: date | None = None, end: date | None = None
) -> list[tuple[str, int, int]]:
    """Return (organization, overdue answers, late answers) counted against each, most first."""
    rows = [(k, f.get("overdue", 0), f.get("late", 0))
            for k, f in _sums(session, "complaint_org", start, end).items()]  # fmt: skip
    rows = [r for r in rows if r[1] or r[2]]
    rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
    return rows[:100]
