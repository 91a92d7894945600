"""File, list and answer complaints.

STAND-IN for the citizen site's complaints services (see models.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.verdict import checks_before
from registry.complaints.models import STATUSES, Complaint, ComplaintMessage, ComplaintSubmission
from registry.errors import NotFound, UnknownAddress, ValidationFailed
from registry.senders.services import carrier_of, clean_address, sender_by_address
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
    agent_id = carrier_id = None
    cleaned = clean_address(address)[:32]
    if sender_id is not None:
        last, _ = checks_before(session, phone, sender_id, channel, contacted_at)
        agent_id = last.agent_id if last is not None else None
        # The chain's carrier: the one attesting the address, else the one the check named.
        carrier_id = carrier_of(session, cleaned) or (last.carrier_id if last else None)
    complaint = Complaint(
        phone=phone,
        address=cleaned,
        sender_id=sender_id,
        organization_id=org_id,
        agent_id=agent_id,
        carrier_id=carrier_id,
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


def _sent_before(session: Session, token: str, phone: str) -> ComplaintSubmission | None:
    row = session.get(ComplaintSubmission, token, populate_existing=True)
    if row is not None and row.phone != phone:
        # A token is issued to one holder's page; another number's form never sees it.
        raise NotFound("no such form")
    return row


def file_complaint_once(
    session: Session,
    token: str,
    phone: str,
    address: str,
    channel: str,
    contacted_at: datetime,
    text: str | None = None,
) -> tuple[Complaint, bool]:
    """File a complaint from a one-time form; a second sending returns the first's complaint.

    Returns the complaint and whether this call made it. The token's row is
    inserted with the complaint, in one savepoint: when two sendings race, the
    loser's insert fails on the primary key, its complaint is rolled back with
    it, and it answers with the winner's.
    """
    done = _sent_before(session, token, phone)
    if done is not None:
        return get(session, done.complaint_id), False
    try:
        with session.begin_nested():
            complaint = file_complaint(session, phone, address, channel, contacted_at, text)
            session.add(
                ComplaintSubmission(token=token, phone=phone, complaint_id=complaint.id or 0)
            )
            session.flush()
    except IntegrityError:
        done = _sent_before(session, token, phone)
        if done is None:
            raise
        return get(session, done.complaint_id), False
    return complaint, True


def reply_once(
    session: Session, token: str, complaint: Complaint, body: str, *, author: str
) -> tuple[ComplaintMessage, bool]:
    """Add the holder's message from a one-time form; a second sending adds nothing."""
    done = _sent_before(session, token, complaint.phone)
    if done is not None and done.message_id is not None:
        return _message(session, done.message_id), False
    if done is not None:  # the token of a complaint form, sent to a reply form
        raise ValidationFailed("this form was already used", field="body")
    try:
        with session.begin_nested():
            message = reply(session, complaint, body, author=author)
            session.add(
                ComplaintSubmission(
                    token=token,
                    phone=complaint.phone,
                    complaint_id=complaint.id or 0,
                    message_id=message.id,
                )
            )
            session.flush()
    except IntegrityError:
        done = _sent_before(session, token, complaint.phone)
        if done is None or done.message_id is None:
            raise
        return _message(session, done.message_id), False
    return message, True


def _message(session: Session, message_id: int) -> ComplaintMessage:
    message = session.get(ComplaintMessage, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    return message
