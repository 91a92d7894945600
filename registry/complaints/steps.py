"""The steps of a complaint as its holder reads them: received, forwarded, answered, replied.

Derived from the complaint, its routes and its thread on every reading (no
second record to drift from the first); the site turns each step's ``kind``
into plain words in the holder's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.complaints import routing, services
from registry.complaints.models import Complaint
from registry.orgs.models import Organization


@dataclass(frozen=True, slots=True)
class Step:
    """One step: when, what kind, and the names it mentions."""

    at: datetime
    kind: str  # received | duplicate | police | closed_allowed | forwarded | referred |
    #            org_answered | sector_replied | regulator_replied | closed
    #            (holder_wrote: an author of no other kind; the holder's own are shown apart)
    who: str | None = None
    text: str | None = None
    late: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def steps(session: Session, complaint: Complaint) -> list[Step]:
    """Return every step of ``complaint``, oldest first."""
    out = [Step(complaint.created_at, "received", extra=_received(session, complaint))]
    if complaint.police:
        out.append(Step(complaint.created_at, "police"))
    rows = routing.routes(session, complaint.id or 0)
    ids = {r.organization_id for r in rows if r.organization_id is not None}
    orgs = session.execute(
        select(col(Organization.id), col(Organization.slug), col(Organization.name)).where(
            col(Organization.id).in_(ids)
        )
    ).all()
    by_id = {i: name for i, _, name in orgs}
    by_slug = {slug: name for _, slug, name in orgs}
    for r in rows:
        who = by_id.get(r.organization_id) if r.organization_id is not None else r.sector
        kind = "referred" if r.role == "sector" else "forwarded"
        out.append(Step(r.forwarded_at, kind, who, extra={"role": r.role}))
    late = {r.answered_by for r in rows if r.answered_by and r.late}
    for m in services.thread(session, complaint.id or 0):
        if m.author == "holder":
            continue  # the holder's own messages are shown as such, beside the steps
        out.append(_message_step(m.author, m.body, m.created_at, by_slug, late))
    closed_by_desk = complaint.verdict != "allowed" and complaint.duplicate_of is None
    if complaint.status == "closed" and complaint.closed_at and closed_by_desk:
        out.append(Step(complaint.closed_at, "closed"))
    out.sort(key=lambda s: s.at)
    return out


def _received(session: Session, complaint: Complaint) -> dict[str, str]:
    extra = {"intake": complaint.intake}
    if complaint.reporter_id is not None:
        reporter = session.get(Organization, complaint.reporter_id)
        extra["reporter"] = reporter.name if reporter is not None else ""
        extra["verification"] = complaint.verification or ""
    return extra


def _message_step(
    author: str, body: str, at: datetime, names: dict[str, str], late: set[str]
) -> Step:
    if author == "system":
        if body.startswith("duplicate of "):
            return Step(at, "duplicate", extra={"of": body.removeprefix("duplicate of ")})
        return Step(at, "closed_allowed")
    if author.startswith("org:"):
        slug = author[4:]
        return Step(at, "org_answered", names.get(slug, slug), body, author in late)
    if author.startswith("sector:"):
        return Step(at, "sector_replied", author.split(":")[1], body)
    if author.startswith("regulator"):
        return Step(at, "regulator_replied", None, body)
    return Step(at, "holder_wrote", None, body)
