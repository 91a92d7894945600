"""File, list and answer complaints.

STAND-IN for the citizen site's complaints services (see models.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.verdict import checks_before
from registry.complaints.models import STATUSES, Complaint, ComplaintMessage
from registry.errors import NotFound, UnknownAddress, ValidationFailed
from registry.senders.services import sender_by_address
from registry.timeutil import utcnow

CHANNELS = ("voice", "sms")


def file_complaint(
    session: Session,
    phone: str,
    address: str,
    channel: str,
    contacted_at: datetime,
    text: str | None = None,
) -> Complaint:
    """Record a holder's complaint, matched to the sender that uses ``address``.

    When the sender's latest check of the number before the contact was made
    by an agent for it, the complaint names that agent too.
    """
    if channel not in CHANNELS:
        raise ValidationFailed("channel must be voice or sms", field="channel")
    now = utcnow()
    if contacted_at > now:
        raise ValidationFailed("the contact time is in the future", field="contacted_at")
    sender_id: int | None
    org_id: int | None
    try:
        sender = sender_by_address(session, address, now)
        sender_id, org_id = sender.id, sender.organization_id
    except UnknownAddress:
        sender_id = org_id = None
    agent_id = None
    if sender_id is not None:
        last, _ = checks_before(session, phone, sender_id, channel, contacted_at)
        agent_id = last.agent_id if last is not None else None
    complaint = Complaint(
        phone=phone,
        address=address.replace(" ", "").replace("-", "")[:32],
        sender_id=sender_id,
        organization_id=org_id,
        agent_id=agent_id,
        channel=channel,
        contacted_at=contacted_at,
        text=(text or "").strip()[:2000] or None,
        created_at=now,
    )
    session.add(complaint)
    session.flush()
    return complaint


def get(session: Session, complaint_id: int) -> Complaint:
    """Return a complaint or raise NotFound."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None:
        raise NotFound(f"no complaint {complaint_id}")
    return complaint


def for_phone(session: Session, phone: str) -> list[Complaint]:
    """Return a holder's complaints, newest first."""
    return list(
        session.scalars(
            select(Complaint)
            .where(col(Complaint.phone) == phone)
            .order_by(col(Complaint.id).desc())
        )
    )


def thread(session: Session, complaint_id: int) -> list[ComplaintMessage]:
    """Return a complaint's messages, oldest first."""
    return list(
        session.scalars(
            select(ComplaintMessage)
            .where(col(ComplaintMessage.complaint_id) == complaint_id)
            .order_by(col(ComplaintMessage.id))
        )
    )


def reply(session: Session, complaint: Complaint, body: str, *, author: str) -> ComplaintMessage:
    """Add a message to the thread; the regulator's first reply marks the complaint answered."""
    body = body.strip()
    if not body:
        raise ValidationFailed("the reply is empty", field="body")
    if len(body) > 4000:
        raise ValidationFailed("the reply is longer than 4000 characters", field="body")
    message = ComplaintMessage(complaint_id=complaint.id, author=author, body=body)  # type: ignore[arg-type]
    session.add(message)
    if author.startswith("regulator") and complaint.answered_at is None:
        complaint.answered_at = message.created_at
        if complaint.status == "open":
            complaint.status = "answered"
    session.flush()
    return message


def set_status(session: Session, complaint: Complaint, status: str) -> Complaint:
    """Change a complaint's status."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}", field="status")
    complaint.status = status
    session.flush()
    return complaint
