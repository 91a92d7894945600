"""The regulator's complaint desk: the queue, ageing, verdicts, and complaint statistics.

Kept apart from the site's complaint services: these functions only read
complaints (and call ``verdict_for_contact``); answering goes through the
domain's own ``reply`` and ``set_status``.

A complaint is *overdue* when it is still ``open`` with no regulator reply
``REGISTRY_COMPLAINT_ANSWER_DAYS`` days after it was filed. A complaint is
*verified* when the registry's own records corroborate it: its verdict is
``no_check`` or ``contacted_despite_deny``. The sanction trigger counts
verified complaints only, so that a sender that checked and held a valid
consent is not sanctioned by a holder who forgot they agreed.

A complaint whose verdict rests on a check an agent made for the principal's
sender (``Complaint.agent_id``) counts against both organizations: the queue
finds it under either, and the statistics count it for the principal and,
separately marked, for the agent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, String, and_, func, select
from sqlalchemy.orm import Mapped, Session, aliased
from sqlmodel import col

from registry.checks.models import CheckLog
from registry.checks.verdict import Verdict, verdict_for_contact
from registry.complaints import deadlines
from registry.complaints.models import Complaint, ComplaintRoute
from registry.config import Settings
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the officer narrowed the queue to."""

    status: str | None = None
    org: str | None = None  # organization slug
    sender: str | None = None  # sender code
    older_than_days: int | None = None
    overdue: bool = False


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One complaint in the queue."""

    complaint: Complaint
    sender_code: str | None
    org_slug: str | None
    age_days: float
    overdue: bool
    agent_slug: str | None = None  # the agent that checked for the sender, if one did
    carrier_slug: str | None = None  # the carrier connecting the address (issue 15)


def _overdue_clause(now: datetime, answer_days: int) -> ColumnElement[bool]:
    return and_(
        col(Complaint.status) == "open",
        col(Complaint.answered_at).is_(None),
        col(Complaint.created_at) < now - timedelta(days=answer_days),
    )


def is_overdue(complaint: Complaint, now: datetime, answer_days: int) -> bool:
    """Tell whether the complaint is past its answer deadline without a reply."""
    return (
        complaint.status == "open"
        and complaint.answered_at is None
        and complaint.created_at < now - timedelta(days=answer_days)
    )


def queue(
    session: Session, f: QueueFilter, now: datetime, answer_days: int, limit: int = 200
) -> list[QueueRow]:
    """Return the complaints that match ``f``: overdue first, then oldest first.

    ``f.org`` matches a complaint against the organization at any tier of the
    chain: as the merchant (principal), as the agent, or as the carrier
    connecting the address.
    """
    agent, carrier = aliased(Organization), aliased(Organization)
    query = (
        select(Complaint, col(Sender.code), col(Organization.slug), col(agent.slug),
               col(carrier.slug))
        .outerjoin(Sender, col(Sender.id) == col(Complaint.sender_id))
        .outerjoin(Organization, col(Organization.id) == col(Complaint.organization_id))
        .outerjoin(agent, col(agent.id) == col(Complaint.agent_id))
        .outerjoin(carrier, col(carrier.id) == col(Complaint.carrier_id))
    )  # fmt: skip
    if f.status:
        query = query.where(col(Complaint.status) == f.status)
    if f.org:
        query = query.where(
            (col(Organization.slug) == f.org)
            | (col(agent.slug) == f.org)
            | (col(carrier.slug) == f.org)
        )
    if f.sender:
        query = query.where(col(Sender.code) == f.sender)
    if f.older_than_days is not None:
        query = query.where(col(Complaint.created_at) < now - timedelta(days=f.older_than_days))
    if f.overdue:
        query = query.where(_overdue_clause(now, answer_days))
    query = query.order_by(col(Complaint.created_at), col(Complaint.id)).limit(limit)
    rows = [
        QueueRow(
            c,
            code,
            slug,
            (now - c.created_at).total_seconds() / 86_400,
            is_overdue(c, now, answer_days),
            agent_slug,
            carrier_slug,
        )
        for c, code, slug, agent_slug, carrier_slug in session.execute(query)
    ]
    rows.sort(key=lambda r: (not r.overdue, r.complaint.created_at))
    return rows


@dataclass(frozen=True, slots=True)
class DeskCounts:
    """The dashboard's complaint figures."""

    open: int
    answered: int
    closed: int
    overdue: int


def counts(session: Session, now: datetime, answer_days: int) -> DeskCounts:
    """Return how many complaints are open, answered, closed and overdue."""
    by_status = dict(
        session.execute(
            select(col(Complaint.status), func.count()).group_by(col(Complaint.status))
        ).all()
    )
    overdue = session.scalar(
        select(func.count()).select_from(Complaint).where(_overdue_clause(now, answer_days))
    )
    return DeskCounts(
        int(by_status.get("open", 0)),
        int(by_status.get("answered", 0)),
        int(by_status.get("closed", 0)),
        int(overdue or 0),
    )


def verdict(session: Session, settings: Settings, complaint: Complaint) -> Verdict:
    """Return the automatic verdict on a complaint, as of its contact time."""
    return verdict_for_contact(
        session,
        settings,
        phone=complaint.phone,
        sender_id=complaint.sender_id,
        channel=complaint.channel,
        contacted_at=complaint.contacted_at,
    )


VERIFIED = frozenset({"no_check", "contacted_despite_deny"})  # as ``Verdict.verified``
CHUNK = 500  # complaints per statement in ``verdict_codes``


def _latest_decisions(session: Session, ids: list[int]) -> dict[int, str | None]:
    """Return, per complaint id, the decision of the sender's latest check before the contact.

    The same rows ``checks_before`` reads for one complaint, for ``CHUNK`` complaints
    in one statement: a correlated subquery per complaint on the (phone,
    checked_at) index. ``None``: the sender never asked before the contact.
    """
    latest = (
        select(col(CheckLog.decision))
        .where(
            col(CheckLog.phone) == Complaint.phone,
            col(CheckLog.checked_at) <= Complaint.contacted_at,
            col(CheckLog.sender_id) + 0 == Complaint.sender_id,  # see ``checks_before``
            col(CheckLog.channel) == Complaint.channel,
            col(CheckLog.purpose) == "marketing",
        )
        .order_by(col(CheckLog.checked_at).desc(), col(CheckLog.id).desc())
        .limit(1)
        .correlate(Complaint)
        .scalar_subquery()
    )
    out: dict[int, str | None] = {}
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = session.execute(select(col(Complaint.id), latest).where(col(Complaint.id).in_(part)))
        for complaint_id, decision in rows:
            out[int(str(complaint_id))] = None if decision is None else str(decision)
    return out


def verdict_codes(
    session: Session, settings: Settings, complaints: Sequence[Complaint]
) -> dict[int, str]:
    """Return each complaint's verdict code by id: ``verdict(...).code`` for thousands at once.

    The quarterly review, the sharing exports and the trigger need the code of
    every complaint of a quarter. Most are settled by the check log alone — no
    check before the contact (``no_check``) or a deny (``contacted_despite_deny``)
    — read for ``CHUNK`` complaints in one statement; only a complaint whose
    latest check said allow needs the as-of decision at the contact time, which
    ``verdict`` computes as for one complaint. ``tests/admin/test_verdicts.py``
    checks that both agree.
    """
    with_sender = [c for c in complaints if c.sender_id is not None]
    known = set(
        session.scalars(
            select(col(Sender.id)).where(col(Sender.id).in_({c.sender_id for c in with_sender}))
        )
    )
    last = _latest_decisions(session, [c.id for c in with_sender if c.id is not None])
    codes: dict[int, str] = {}
    for c in complaints:
        key = c.id or 0
        if c.sender_id is None or c.sender_id not in known:
            codes[key] = "unknown_sender"
        elif last.get(key) is None:
            codes[key] = "no_check"
        elif last[key] != "allow":
            codes[key] = "contacted_despite_deny"
        else:
            codes[key] = verdict(session, settings, c).code
    return codes


def verified_counts(
    session: Session, settings: Settings, days: int, now: datetime
) -> list[tuple[int, int]]:
    """Return (sender id, verified complaints filed in the last ``days`` days) per sender."""
    complaints = session.scalars(
        select(Complaint).where(
            col(Complaint.sender_id).is_not(None),
            col(Complaint.created_at) >= now - timedelta(days=days),
        )
    ).all()
    codes = verdict_codes(session, settings, complaints)
    tally: Counter[int] = Counter(
        c.sender_id or 0 for c in complaints if codes[c.id or 0] in VERIFIED
    )
    return sorted(tally.items())


def _bounds(start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    clauses = []
    if start is not None:
        clauses.append(col(Complaint.created_at) >= datetime.combine(start, time(), UTC))
    if end is not None:
        clauses.append(col(Complaint.created_at) < datetime.combine(end, time(), UTC))
    return clauses


def _per_quarter(
    session: Session, org_column: Mapped[int | None], start: date | None, end: date | None
) -> dict[str, dict[str, int]]:
    month: ColumnElement[str] = func.substr(func.cast(col(Complaint.created_at), String()), 1, 7)
    rows = session.execute(
        select(col(Organization.slug), month, func.count())
        .join(Organization, col(Organization.id) == org_column)
        .where(*_bounds(start, end))
        .group_by(col(Organization.slug), month)
    )
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for slug, ym, n in rows:
        year, mon = int(ym[:4]), int(ym[5:7])
        out[slug][f"{year}Q{(mon - 1) // 3 + 1}"] += int(n)
    return out


def per_org_quarter(
    session: Session, start: date | None = None, end: date | None = None
) -> dict[str, dict[str, int]]:
    """Return complaints per organization slug per quarter (``YYYYQn``) in [start, end).

    Counts each complaint against the organization that owns the sender,
    whoever checked for it. Groups by organization and month in SQL (one pass
    over the indexed ``created_at``), folds months into quarters here.
    """
    return _per_quarter(session, col(Complaint.organization_id), start, end)


def per_agent_quarter(
    session: Session, start: date | None = None, end: date | None = None
) -> dict[str, dict[str, int]]:
    """Return complaints per agent slug per quarter in [start, end): those an agent checked for."""
    return _per_quarter(session, col(Complaint.agent_id), start, end)


def per_carrier_quarter(
    session: Session, start: date | None = None, end: date | None = None
) -> dict[str, dict[str, int]]:
    """Return complaints per carrier slug per quarter in [start, end): the carrier connecting the address."""
    return _per_quarter(session, col(Complaint.carrier_id), start, end)


def answer_days_list(
    session: Session, start: date | None = None, end: date | None = None
) -> tuple[list[float], int]:
    """Return the days each answered complaint filed in [start, end) waited, and how many wait still."""
    rows = session.execute(
        select(col(Complaint.created_at), col(Complaint.answered_at)).where(*_bounds(start, end))
    ).all()
    waited = [(a - c).total_seconds() / 86_400 for c, a in rows if a is not None]
    return waited, sum(1 for _, a in rows if a is None)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """The agent whose check a verdict rests on, and the principal it acted for."""

    slug: str
    name: str
    principal_slug: str
    principal_name: str


def agent_of(session: Session, verdict: Verdict, complaint: Complaint) -> AgentInfo | None:
    """Return the agent that checked for the complaint's sender, when the verdict rests on one."""
    if verdict.agent_id is None or complaint.organization_id is None:
        return None
    names = {
        i: (slug, name)
        for i, slug, name in session.execute(
            select(col(Organization.id), col(Organization.slug), col(Organization.name)).where(
                col(Organization.id).in_((verdict.agent_id, complaint.organization_id))
            )
        )
    }
    agent, principal = names[verdict.agent_id], names[complaint.organization_id]
    return AgentInfo(agent[0], agent[1], principal[0], principal[1])


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The matched sender as the desk shows it."""

    code: str
    name: str
    org_slug: str
    org_name: str
    suspended: bool


def sender_of(session: Session, complaint: Complaint) -> SenderInfo | None:
    """Return the complaint's matched sender and its organization."""
    if complaint.sender_id is None:
        return None
    row = session.execute(
        select(Sender, Organization)
        .join(Organization, col(Organization.id) == col(Sender.organization_id))
        .where(col(Sender.id) == complaint.sender_id)
    ).first()
    if row is None:
        return None
    sender, org = row
    now = utcnow()
    suspended = any(
        u is not None and u > now for u in (sender.suspended_until, org.suspended_until)
    )
    return SenderInfo(sender.code, sender.name, org.slug, org.name, suspended)


@dataclass(frozen=True, slots=True)
class RouteRow:
    """Where a complaint went, as the desk shows it."""

    role: str
    party: str  # the organization's name, or the sector
    slug: str | None
    due_on: date
    answered_at: datetime | None
    late: bool
    overdue: bool
    action: str | None
    dispute_valid: bool | None


def routes_of(
    session: Session, settings: Settings, complaint: Complaint, now: datetime
) -> list[RouteRow]:
    """Return the routes of a complaint with their organizations and deadlines."""
    rows = session.execute(
        select(ComplaintRoute, col(Organization.slug), col(Organization.name))
        .outerjoin(Organization, col(Organization.id) == col(ComplaintRoute.organization_id))
        .where(col(ComplaintRoute.complaint_id) == complaint.id)
        .order_by(col(ComplaintRoute.id))
    ).all()
    return [
        RouteRow(
            r.role,
            name or r.sector or "",
            slug,
            r.due_on,
            r.answered_at,
            r.late,
            r.overdue_at is not None
            or deadlines.is_overdue(r.due_on, r.answered_at, now, settings.tz),
            r.action,
            r.dispute_valid,
        )
        for r, slug, name in rows
    ]
