"""Route a complaint to whoever is responsible, take their answers, watch the deadlines.

After the automatic verdict (``registry.checks.verdict``) a complaint is

- closed at once when the sender checked and the registry allowed the contact
  (``allowed``), unless it is a fraud or a threat: those go to the police
  channel and no verdict closes them;
- kept at the regulator's desk when no registered sender uses the address;
- otherwise forwarded to every organization ``responsible`` names (the
  merchant, the agent whose check the verdict rests on, and, once the chain of
  responsibility lands, the carrier), each with a ``ComplaintRoute`` and a
  deadline, and announced to each in its change feed (and so its webhooks) as
  a ``complaint.forwarded`` change; and referred to the sector desk of the
  sender's industry (``registry.complaints.sectors``).

Each organization answers through the API (``answer``): only one the
complaint was routed to; an answer after its deadline is kept, marked late.
``sweep`` flags what is overdue and escalates the complaint to the officers.
Every change is written to the audit trail (``registry.audit``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.audit import services as audit
from registry.checks import receipts
from registry.checks.verdict import verdict_for_contact
from registry.complaints import deadlines, services
from registry.complaints.models import ACTIONS, Complaint, ComplaintRoute
from registry.complaints.sectors import sector_of
from registry.config import Settings
from registry.errors import Forbidden, NotFound, ValidationFailed
from registry.events import services as events
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.sms import services as sms
from registry.subscribers.models import Subscriber
from registry.tokens import InvalidToken

FORWARDED = "complaint.forwarded"


@dataclass(frozen=True, slots=True)
class Party:
    """An organization a complaint is forwarded to, and in what capacity."""

    role: str  # merchant | agent | carrier
    organization_id: int


def responsible(session: Session, complaint: Complaint) -> list[Party]:
    """Return the organizations responsible for the contact complained of, in chain order.

    The one place the chain of responsibility is computed: the merchant that
    owns the sender (谁制作谁负责), the agent whose check the verdict rests on
    (谁发送谁负责), and the carrier that connects the address (谁接入谁负责:
    the one attesting it, else the one the check named; ``Complaint.carrier_id``).
    """
    parties = []
    if complaint.organization_id is not None:
        parties.append(Party("merchant", complaint.organization_id))
    if complaint.agent_id is not None and complaint.agent_id != complaint.organization_id:
        parties.append(Party("agent", complaint.agent_id))
    if complaint.carrier_id is not None:
        parties.append(Party("carrier", complaint.carrier_id))
    return parties


def _audit(session: Session, what: str, complaint: Complaint, actor: str, **data: Any) -> None:
    audit.record(session, None, what, f"complaint:{complaint.id}", data or None, actor=actor)


def _system_note(session: Session, complaint: Complaint, body: str) -> None:
    services.reply(session, complaint, body, author="system")


def route(session: Session, settings: Settings, complaint: Complaint) -> list[ComplaintRoute]:
    """Set the deadlines, take the verdict, and forward the complaint; the caller commits."""
    tz = settings.tz
    complaint.ack_due = deadlines.due(complaint.created_at, settings.complaint_ack_days, tz)
    complaint.final_due = deadlines.due(complaint.created_at, settings.complaint_final_days, tz)
    if complaint.duplicate_of is not None:
        complaint.status, complaint.closed_at = "closed", complaint.created_at
        first = services.get(session, complaint.duplicate_of)
        _system_note(session, complaint, f"duplicate of {first.reference}")
        _audit(session, "complaint.duplicate", complaint, "system", of=first.id)
        return []
    verdict = verdict_for_contact(
        session,
        settings,
        phone=complaint.phone,
        sender_id=complaint.sender_id,
        channel=complaint.channel,
        contacted_at=complaint.contacted_at,
    )
    complaint.verdict = verdict.code
    _audit(session, "complaint.verdict", complaint, "system", verdict=verdict.code,
           police=complaint.police)  # fmt: skip
    if verdict.code == "allowed" and not complaint.police:
        complaint.status, complaint.closed_at = "closed", complaint.created_at
        _system_note(session, complaint, "closed: allowed")
        return []
    routes = [
        _forward(session, settings, complaint, p.role, p.organization_id, None)
        for p in responsible(session, complaint)
    ]
    category = (
        session.scalar(select(col(Sender.category)).where(col(Sender.id) == complaint.sender_id))
        if complaint.sender_id is not None
        else None
    )
    if (sector := sector_of(category)) is not None:
        complaint.sector = sector
        routes.append(_forward(session, settings, complaint, "sector", None, sector))
    session.flush()
    return routes


def _forward(
    session: Session,
    settings: Settings,
    complaint: Complaint,
    role: str,
    org_id: int | None,
    sector: str | None,
) -> ComplaintRoute:
    now = complaint.created_at
    row = ComplaintRoute(
        complaint_id=complaint.id or 0,
        role=role,
        organization_id=org_id,
        sector=sector,
        forwarded_at=now,
        due_on=deadlines.due(now, settings.complaint_org_days, settings.tz),
    )
    session.add(row)
    session.flush()
    if org_id is not None:
        # The organization's change feed (and so its webhooks) carries the
        # forward; the event names the recipient, not the sender, so a merchant
        # never reads its agent's forward nor the agent the merchant's.
        events.record(
            session,
            events.SYSTEM,
            complaint.phone,
            FORWARDED,
            organization_id=org_id,
            state="forwarded",
            data=forward_data(complaint, row),
            at=now,
        )
    _audit(session, "complaint.forward", complaint, "system", role=role, org=org_id,
           sector=sector, due_on=row.due_on)  # fmt: skip
    return row


def forward_data(complaint: Complaint, row: ComplaintRoute) -> dict[str, Any]:
    """Return what a forward tells the organization (the feed's ``complaint`` object)."""
    return {
        "id": complaint.id,
        "reference": complaint.reference,
        "role": row.role,
        "type": complaint.type,
        "address": complaint.address,
        "channel": complaint.channel,
        "contacted_at": complaint.contacted_at.isoformat(),
        "verdict": complaint.verdict,
        "due_on": row.due_on.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """An organization's answer to a complaint routed to it."""

    found: str
    action: str
    attachments: list[str] = field(default_factory=list)
    dispute_receipt: str | None = None


def route_of(session: Session, complaint: Complaint, org_id: int) -> ComplaintRoute:
    """Return the route of ``complaint`` to ``org_id``; 403 when it was never routed there."""
    row = session.scalar(
        select(ComplaintRoute)
        .where(
            col(ComplaintRoute.complaint_id) == complaint.id,
            col(ComplaintRoute.organization_id) == org_id,
        )
        .order_by(col(ComplaintRoute.id))
        .limit(1)
    )
    if row is None:
        raise Forbidden("this complaint was not routed to your organization")
    return row


def _dispute_valid(
    settings: Settings, complaint: Complaint, receipt: str, code: str | None
) -> bool:
    """Tell whether a receipt shows the sender checked this number and was allowed, before."""
    try:
        claims = receipts.verify(settings, receipt)
    except (InvalidToken, NotFound) as exc:
        raise ValidationFailed(
            "the receipt is not one the registry signed", field="dispute"
        ) from exc
    checked = datetime.fromisoformat(claims.checked_at.replace("Z", "+00:00"))
    return (
        claims.decision == "allow"
        and claims.sender == code
        and claims.phone in (None, complaint.phone)
        and checked <= complaint.contacted_at
    )


def answer(
    session: Session,
    settings: Settings,
    complaint: Complaint,
    org: Organization,
    given: Answer,
    now: datetime,
) -> ComplaintRoute:
    """Record an organization's answer; late when after the deadline; the caller commits."""
    row = route_of(session, complaint, org.id or 0)
    if row.answered_at is not None:
        raise ValidationFailed("your organization already answered this complaint")
    found = given.found.strip()
    if not found or len(found) > 2000:
        raise ValidationFailed("found: 1 to 2000 characters", field="found")
    if given.action not in ACTIONS:
        raise ValidationFailed(f"action must be one of {', '.join(ACTIONS)}", field="action")
    if len(given.attachments) > 20 or any(not 0 < len(a) <= 200 for a in given.attachments):
        raise ValidationFailed("attachments: up to 20 references of 1 to 200 characters",
                               field="attachments")  # fmt: skip
    if given.dispute_receipt is not None:
        code = session.scalar(select(col(Sender.code)).where(col(Sender.id) == complaint.sender_id))
        row.dispute_valid = _dispute_valid(settings, complaint, given.dispute_receipt, code)
        row.dispute_receipt = given.dispute_receipt[:400]
    row.found, row.action = found, given.action
    row.attachments = json.dumps(given.attachments, ensure_ascii=False)
    row.answered_at, row.answered_by = now, f"org:{org.slug}"
    row.late = deadlines.local_day(now, settings.tz) > row.due_on
    services.reply(session, complaint, found, author=f"org:{org.slug}")
    _audit(session, "complaint.org_answer", complaint, f"org:{org.slug}", action=given.action,
           late=row.late, dispute=row.dispute_valid)  # fmt: skip
    return row


def sector_answer(
    session: Session,
    settings: Settings,
    complaint: Complaint,
    sector: str,
    body: str,
    staff_email: str,
    now: datetime,
) -> ComplaintRoute:
    """Record the sector desk's reply in the complaint's thread; only the desk referred to."""
    row = session.scalar(
        select(ComplaintRoute).where(
            col(ComplaintRoute.complaint_id) == complaint.id,
            col(ComplaintRoute.role) == "sector",
            col(ComplaintRoute.sector) == sector,
        )
    )
    if row is None:
        raise Forbidden("this complaint was not referred to your sector's desk")
    services.reply(session, complaint, body, author=f"sector:{sector}:{staff_email}")
    if row.answered_at is None:
        row.answered_at, row.answered_by = now, staff_email
        row.late = deadlines.local_day(now, settings.tz) > row.due_on
    session.flush()
    return row


FINAL_SMS = {
    "zh_CN": "【安宁】您的投诉 {ref} 已有最终答复，请登录安宁网站查看。",
    "en": "Anning: your complaint {ref} has its final answer; sign in to the Anning site to read it.",
}


def final_reply(
    session: Session, complaint: Complaint, body: str, staff_email: str, now: datetime
) -> None:
    """Give the regulator's final answer: reply, close, and text the holder; the caller commits."""
    services.reply(session, complaint, body, author=f"regulator:{staff_email}")
    services.set_status(session, complaint, "closed")
    complaint.closed_at = now
    holder = session.get(Subscriber, complaint.phone)
    lang = "en" if holder is not None and (holder.language or "").startswith("en") else "zh_CN"
    sms.send(session, complaint.phone, FINAL_SMS[lang].format(ref=complaint.reference),
             "complaint_final")  # fmt: skip


def routes(session: Session, complaint_id: int) -> list[ComplaintRoute]:
    """Return where a complaint was routed, in order."""
    return list(
        session.scalars(
            select(ComplaintRoute)
            .where(col(ComplaintRoute.complaint_id) == complaint_id)
            .order_by(col(ComplaintRoute.id))
        )
    )


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep flagged: overdue routes and escalated complaints."""

    routes: list[int]
    escalated: list[int]


def sweep(session: Session, settings: Settings, now: datetime) -> Swept:
    """Flag overdue answers and escalate their complaints to the officers; the caller commits.

    A route is overdue from the day after its ``due_on`` (working days, see
    ``deadlines``) while unanswered; a complaint is escalated when one of its
    routes is overdue, or its own acknowledgement or final reply is. Each item
    is flagged once (``overdue_at``, ``escalated_at``), so a sweep may run as
    often as wanted; the flag stays when the answer comes later (it counts
    against the organization in the statistics).
    """
    today = deadlines.local_day(now, settings.tz)
    late_routes = session.scalars(
        select(ComplaintRoute).where(
            col(ComplaintRoute.answered_at).is_(None),
            col(ComplaintRoute.overdue_at).is_(None),
            col(ComplaintRoute.due_on) < today,
        )
    ).all()
    escalate: set[int] = set()
    for row in late_routes:
        row.overdue_at = now
        escalate.add(row.complaint_id)
        audit.record(session, None, "complaint.overdue", f"complaint:{row.complaint_id}",
                     {"role": row.role, "org": row.organization_id, "sector": row.sector,
                      "due_on": row.due_on}, actor="system")  # fmt: skip
    stale = session.scalars(
        select(col(Complaint.id)).where(
            col(Complaint.escalated_at).is_(None),
            col(Complaint.status) != "closed",
            ((col(Complaint.acknowledged_at).is_(None)) & (col(Complaint.ack_due) < today))
            | (col(Complaint.final_due) < today),
        )
    ).all()
    escalate.update(i for i in stale if i is not None)
    done = []
    for complaint_id in sorted(escalate):
        complaint = services.get(session, complaint_id)
        if complaint.escalated_at is None:
            complaint.escalated_at = now
            done.append(complaint_id)
            _audit(session, "complaint.escalate", complaint, "system")
    session.flush()
    return Swept([r.id or 0 for r in late_routes], done)


def lodge(
    session: Session,
    settings: Settings,
    phone: str,
    address: str,
    channel: str,
    contacted_at: datetime,
    text: str | None = None,
    how: services.Intake | None = None,
) -> Complaint:
    """File a complaint on any channel of intake and route it; the caller commits."""
    complaint = services.file_complaint(session, phone, address, channel, contacted_at, text, how)
    how = how or services.Intake()
    actor = how.entered_by or (f"reporter:{how.reporter_id}" if how.reporter_id else "holder")
    _audit(session, "complaint.file", complaint, actor, intake=complaint.intake,
           type=complaint.type, duplicate_of=complaint.duplicate_of)  # fmt: skip
    route(session, settings, complaint)
    return complaint


def lodge_once(
    session: Session,
    settings: Settings,
    token: str,
    phone: str,
    address: str,
    channel: str,
    contacted_at: datetime,
    text: str | None = None,
    type_: str = "no_consent",
) -> tuple[Complaint, bool]:
    """File and route a complaint from the site's one-time form (a resend files nothing)."""
    complaint, made = services.file_complaint_once(
        session, token, phone, address, channel, contacted_at, text, services.Intake(type=type_)
    )
    if made:
        _audit(session, "complaint.file", complaint, "holder", intake="site", type=type_,
               duplicate_of=complaint.duplicate_of)  # fmt: skip
        route(session, settings, complaint)
    return complaint, made
