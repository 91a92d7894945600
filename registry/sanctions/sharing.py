"""Sharing with the sector regulators: per industry and quarter, as CSV rows.

Two exports: the industry table (holders' willingness to be contacted, checks,
complaints and verified complaints of the quarter, per sender category) and
the complaint clues (one line per complaint matched to a sender: who, from
which address, when, on what channel, and the registry's verdict). Neither
carries a holder's number or words: a sector department needs the company and
the pattern, and asks the registry for more through the ordinary channels.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.complaints import desk
from registry.complaints.models import Complaint
from registry.config import Settings
from registry.errors import ValidationFailed
from registry.orgs.models import Organization
from registry.sanctions import review
from registry.senders.models import CATEGORIES, Sender
from registry.stats import services as stats
from registry.timeutil import iso

INDUSTRY_FIELDS = (
    "quarter", "industry", "holders", "blocking_voice", "blocking_voice_pct", "blocking_sms",
    "blocking_sms_pct", "willingness_snapshot", "checks", "complaints", "verified_complaints",
    "verified_per_10k_checks", "companies_with_verified_complaints",
)  # fmt: skip
CLUE_FIELDS = (
    "quarter", "complaint_id", "filed_at", "industry", "organization", "organization_slug",
    "credit_code", "region", "sender", "address", "channel", "contacted_at", "verdict",
    "verified", "status",
)  # fmt: skip
MAX_CLUES = 50_000


def _bounds(quarter: str) -> tuple[datetime, datetime]:
    try:
        first, after = stats.quarter_bounds(quarter)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="q") from exc
    return datetime.combine(first, time(), UTC), datetime.combine(after, time(), UTC)


def industries(session: Session, settings: Settings, quarter: str) -> list[dict[str, Any]]:
    """Return one row per industry for the quarter."""
    _start, end = _bounds(quarter)
    numbers = review.compute(session, settings, quarter)
    per = {r["category"]: r for r in numbers["industries"]}
    companies: dict[str, int] = {}
    for company in numbers["companies"]:
        companies[company["category"]] = companies.get(company["category"], 0) + 1
    snapshot = stats.willingness(session, (end - timedelta(days=1)).date())
    blocking = {cat: (voice, sms) for cat, voice, sms in snapshot.rows}
    holders = snapshot.holders
    rows = []
    for category in CATEGORIES:
        voice, sms = blocking.get(category, (0, 0))
        r = per.get(category, {})
        rows.append(
            {
                "quarter": quarter,
                "industry": category,
                "holders": holders,
                "blocking_voice": voice,
                "blocking_voice_pct": f"{100 * voice / holders:.1f}" if holders else "",
                "blocking_sms": sms,
                "blocking_sms_pct": f"{100 * sms / holders:.1f}" if holders else "",
                "willingness_snapshot": snapshot.day.isoformat() if snapshot.day else "",
                "checks": r.get("checks", 0),
                "complaints": r.get("complaints", 0),
                "verified_complaints": r.get("verified", 0),
                "verified_per_10k_checks": "" if r.get("per_10k") is None else r["per_10k"],
                "companies_with_verified_complaints": companies.get(category, 0),
            }
        )
    return rows


def clues(
    session: Session, settings: Settings, quarter: str, industry: str | None = None
) -> list[dict[str, Any]]:
    """Return the quarter's complaints matched to a sender (of one industry when given)."""
    if industry and industry not in CATEGORIES:
        raise ValidationFailed(f"industry must be one of {', '.join(CATEGORIES)}", field="industry")
    start, end = _bounds(quarter)
    query = (
        select(Complaint, Sender, Organization)
        .join(Sender, col(Sender.id) == Complaint.sender_id)
        .join(Organization, col(Organization.id) == Sender.organization_id)
        .where(col(Complaint.created_at) >= start, col(Complaint.created_at) < end)
        .order_by(col(Complaint.id))
        .limit(MAX_CLUES)
    )
    if industry:
        query = query.where(col(Sender.category) == industry)
    found = session.execute(query).all()
    codes = desk.verdict_codes(session, settings, [complaint for complaint, _, _ in found])
    rows = []
    for complaint, sender, org in found:
        code = codes[complaint.id or 0]
        rows.append(
            {
                "quarter": quarter,
                "complaint_id": complaint.id,
                "filed_at": iso(complaint.created_at),
                "industry": sender.category,
                "organization": org.name,
                "organization_slug": org.slug,
                "credit_code": org.credit_code or "",
                "region": org.region or "",
                "sender": sender.code,
                "address": complaint.address,
                "channel": complaint.channel,
                "contacted_at": iso(complaint.contacted_at),
                "verdict": code,
                "verified": "yes" if code in desk.VERIFIED else "no",
                "status": complaint.status,
            }
        )
    return rows
