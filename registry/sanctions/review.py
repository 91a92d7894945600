"""The quarterly public review: industries and companies with the most verified complaints.

The rate is verified complaints per 10,000 checks in the quarter, per sender
category (the industry) and per organization. A complaint is verified when the
registry's own records support it (the complaint desk's verdict, as the trigger
counts them: no check before the contact, or a contact despite deny); it falls in the quarter it was
filed (UTC). Checks are the check log's rows of the quarter for the same
senders, whoever asked (owner or agent). An organization with verified
complaints and no check at all is listed first: it contacted people without
asking the registry.

The regulator drafts a quarter (a snapshot of these numbers, kept as JSON),
reads the draft, may redraft it, and publishes it; a published review never
changes. Commit is the caller's.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.models import CheckLog
from registry.complaints import desk
from registry.complaints.models import Complaint
from registry.config import Settings
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.orgs.models import Organization
from registry.sanctions.models import PublicReview
from registry.senders.models import Sender
from registry.stats.services import quarter_bounds, quarter_of
from registry.timeutil import iso

PER = 10_000
TOP_COMPANIES = 20
MAX_NOTE = 4000


def _rate(verified: int, checks: int) -> float | None:
    return round(verified * PER / checks, 2) if checks else None


def _rank(row: dict[str, Any]) -> tuple[int, float, int]:
    # No checks but verified complaints first; then by rate; then by complaints.
    unchecked = row["checks"] == 0 and row["verified"] > 0
    return (0 if unchecked else 1, -(row["per_10k"] or 0.0), -row["verified"])


def compute(session: Session, settings: Settings, quarter: str) -> dict[str, Any]:
    """Return the review's numbers for ``quarter`` (``YYYYQn``)."""
    try:
        first, after = quarter_bounds(quarter)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="quarter") from exc
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(after, time(), UTC)
    checks = dict(
        session.execute(
            select(col(CheckLog.sender_id), func.count())
            .where(col(CheckLog.checked_at) >= start, col(CheckLog.checked_at) < end)
            .group_by(col(CheckLog.sender_id))
        ).all()
    )
    complaints = session.scalars(
        select(Complaint).where(
            col(Complaint.sender_id).is_not(None),
            col(Complaint.created_at) >= start,
            col(Complaint.created_at) < end,
        )
    ).all()
    filed: Counter[int] = Counter()
    verified: Counter[int] = Counter()
    codes = desk.verdict_codes(session, settings, complaints)
    for c in complaints:
        filed[c.sender_id or 0] += 1
        if codes[c.id or 0] in desk.VERIFIED:
            verified[c.sender_id or 0] += 1
    sender_ids = set(checks) | set(filed)
    senders = {
        s.id: s for s in session.scalars(select(Sender).where(col(Sender.id).in_(sender_ids)))
    }
    orgs = {
        o.id: o
        for o in session.scalars(
            select(Organization).where(
                col(Organization.id).in_({s.organization_id for s in senders.values()})
            )
        )
    }
    by_category: dict[str, Counter[str]] = {}
    by_org: dict[int, Counter[str]] = {}
    org_categories: dict[int, Counter[str]] = {}
    for sender_id in sender_ids:
        sender = senders.get(sender_id)
        if sender is None:
            continue
        tally = {
            "checks": int(checks.get(sender_id, 0)),
            "complaints": filed[sender_id],
            "verified": verified[sender_id],
        }
        by_category.setdefault(sender.category, Counter()).update(tally)
        by_org.setdefault(sender.organization_id, Counter()).update(tally)
        org_categories.setdefault(sender.organization_id, Counter())[sender.category] += (
            tally["checks"] + tally["verified"]
        )
    industries = [
        {
            "category": category,
            "checks": t["checks"],
            "complaints": t["complaints"],
            "verified": t["verified"],
            "per_10k": _rate(t["verified"], t["checks"]),
        }
        for category, t in by_category.items()
    ]
    industries.sort(key=lambda r: (*_rank(r), r["category"]))
    companies = []
    for org_id, t in by_org.items():
        org = orgs.get(org_id)
        if org is None or t["verified"] == 0:
            continue  # the review names companies with verified complaints only
        companies.append(
            {
                "organization": org.name,
                "slug": org.slug,
                "credit_code": org.credit_code,
                "region": org.region,
                "category": org_categories[org_id].most_common(1)[0][0],
                "checks": t["checks"],
                "complaints": t["complaints"],
                "verified": t["verified"],
                "per_10k": _rate(t["verified"], t["checks"]),
            }
        )
    companies.sort(key=lambda r: (*_rank(r), r["slug"]))
    total_checks = sum(int(n) for n in checks.values())
    total_verified = sum(verified.values())
    return {
        "quarter": quarter,
        "start": first.isoformat(),
        "end": after.isoformat(),
        "checks": total_checks,
        "complaints": sum(filed.values()),
        "verified": total_verified,
        "per_10k": _rate(total_verified, total_checks),
        "industries": industries,
        "companies": companies[:TOP_COMPANIES],
    }


def _note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise ValidationFailed(f"the note is longer than {MAX_NOTE} characters", field="note")
    return text or None


def draft(
    session: Session, settings: Settings, quarter: str, note: str | None, by: str, now: datetime
) -> PublicReview:
    """Draft (or redraft) ``quarter``'s review from the data as it is now."""
    data = compute(session, settings, quarter.upper())
    quarter = data["quarter"]
    row = session.scalar(select(PublicReview).where(col(PublicReview.quarter) == quarter))
    if row is not None and row.status == "published":
        raise Conflict(f"the review of {quarter} is published and cannot change", field="quarter")
    data["drafted_at"] = iso(now)
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    if row is None:
        row = PublicReview(quarter=quarter, data=text, drafted_by=by, drafted_at=now)
        session.add(row)
    else:
        row.data, row.drafted_by, row.drafted_at = text, by, now
    row.note = _note(note)
    session.flush()
    return row


def publish(session: Session, quarter: str, by: str, now: datetime) -> PublicReview:
    """Publish a drafted review; only a quarter that has ended can be published."""
    row = get(session, quarter)
    if row.status == "published":
        raise Conflict(f"the review of {row.quarter} is already published")
    if quarter_of(now.date()) <= row.quarter:
        raise ValidationFailed(
            f"{row.quarter} has not ended: publish its review after the quarter", field="quarter"
        )
    row.status, row.published_by, row.published_at = "published", by, now
    session.flush()
    return row


def get(session: Session, quarter: str, *, published: bool = False) -> PublicReview:
    """Return the review of ``quarter`` (only a published one when ``published``)."""
    row = session.scalar(select(PublicReview).where(col(PublicReview.quarter) == quarter.upper()))
    if row is None or (published and row.status != "published"):
        raise NotFound(
            f"no published review of {quarter}" if published else f"no review of {quarter}"
        )
    return row


def listing(session: Session, *, published: bool = False) -> list[PublicReview]:
    """Return the reviews, newest quarter first."""
    query = select(PublicReview).order_by(col(PublicReview.quarter).desc())
    if published:
        query = query.where(col(PublicReview.status) == "published")
    return list(session.scalars(query))


def data_of(row: PublicReview) -> dict[str, Any]:
    """Return a review's numbers."""
    return dict(json.loads(row.data))
