"""File, list and answer complaints, on every channel of intake (docs/complaints.md).

``file_complaint`` records one; ``registry.complaints.routing.route`` then
takes the automatic verdict and forwards it. ``lodge`` does both, and is what
the site, the reporter API, the SMS forward and the console call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.verdict import checks_before
from registry.complaints.models import (
    INTAKES,
    POLICE_TYPES,
    STATUSES,
    TYPES,
    VERIFICATIONS,
    Complaint,
    ComplaintMessage,
    ComplaintSubmission,
)
from registry.errors import NotFound, UnknownAddress, ValidationFailed
from registry.senders.services import carrier_of, clean_address, sender_by_address
from registry.timeutil import utcnow

CHANNELS = ("voice", "sms")
# Two complaints by one holder about one address and channel within this time
# of each other are about the same contact: the second is linked to the first.
SAME_CONTACT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Intake:
    """How a complaint came in and who vouches for it (defaults: the holder on the site)."""

    type: str = "no_consent"
    intake: str = "site"
    entered_by: str | None = None  # the staff email, for a complaint taken by telephone
    reporter_id: int | None = None
    verification: str | None = None  # how the reporter verified the number (VERIFICATIONS)
    verified_at: datetime | None = None
    verification_ref: str | None = None


def _check_intake(how: Intake, now: datetime) -> None:
    if how.type not in TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TYPES)}", field="type")
    if how.intake not in INTAKES:
        raise ValidationFailed(f"intake must be one of {', '.join(INTAKES)}", field="intake")
    if how.intake == "reporter":
        if how.reporter_id is None or how.verification not in VERIFICATIONS:
            raise ValidationFailed(
                f"verification.method must be one of {', '.join(VERIFICATIONS)}",
                field="verification",
            )
        if how.verified_at is None or how.verified_at > now:
            raise ValidationFailed(
                "verification.verified_at must be a time in the past", field="verification"
            )
    if how.intake == "staff" and not how.entered_by:
        raise ValidationFailed("a complaint taken by telephone names who entered it")


def _first_of_contact(
    session: Session, phone: str, address: str, channel: str, at: datetime
) -> int | None:
    """Return the id of an earlier complaint about the same contact, if any."""
    return session.scalar(
        select(col(Complaint.id))
        .where(
            col(Complaint.phone) == phone,
            col(Complaint.address) == address,
            col(Complaint.channel) == channel,
            col(Complaint.duplicate_of).is_(None),
            col(Complaint.contacted_at) >= at - SAME_CONTACT,
            col(Complaint.contacted_at) <= at + SAME_CONTACT,
        )
        .order_by(col(Complaint.id))
        .limit(1)
    )


def file_complaint(
    session: Session,
    phone: str,
    address: str,
    channel: str,
    contacted_at: datetime,
    text: str | None = None,
    how: Intake | None = None,
) -> Complaint:
    """Record a holder's complaint, matched to the sender that uses ``address``.

    When the sender's latest check of the number before the contact was made
    by an agent for it, the complaint names that agent too. A complaint about
    a contact already complained of is kept and linked (``duplicate_of``).
    An unknown address is kept too: the regulator's desk handles it.
    """
    how = how or Intake()
    if channel not in CHANNELS:
        raise ValidationFailed("channel must be voice or sms", field="channel")
    now = utcnow()
    if contacted_at > now:
        raise ValidationFailed("the contact time is in the future", field="contacted_at")
    _check_intake(how, now)
    address = address.replace(" ", "").replace("-", "")[:32]
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
        type=how.type,
        intake=how.intake,
        police=how.type in POLICE_TYPES,
        duplicate_of=_first_of_contact(session, phone, address, channel, contacted_at)
        if address
        else None,
        entered_by=how.entered_by,
        reporter_id=how.reporter_id,
        verification=how.verification,
        verified_at=how.verified_at,
        verification_ref=(how.verification_ref or "")[:100] or None,
    )
    session.add(complaint)
    session.flush()
    return complaint


def by_reference(session: Session, reference: str) -> Complaint:
    """Return the complaint a reference (``TS0000012``) or a bare id names, or raise NotFound."""
    ref = reference.strip().upper().removeprefix("TS")
    if not ref.isdigit() or not 0 < int(ref) < 2**31:
        raise NotFound(f"no complaint {reference}")
    return get(session, int(ref))


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


def filed_by(session: Session, reporter_id: int, limit: int = 500) -> list[Complaint]:
    """Return the complaints a reporting platform filed, newest first."""
    return list(
        session.scalars(
            select(Complaint)
            .where(col(Complaint.reporter_id) == reporter_id)
            .order_by(col(Complaint.id).desc())
            .limit(limit)
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
    if not author.startswith("holder") and complaint.acknowledged_at is None:
        complaint.acknowledged_at = message.created_at
    session.flush()
    return message


def set_status(session: Session, complaint: Complaint, status: str) -> Complaint:
    """Change a complaint's status; closing stamps ``closed_at``, reopening clears it."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}", field="status")
    complaint.status = status
    complaint.closed_at = (complaint.closed_at or utcnow()) if status == "closed" else None
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
    how: Intake | None = None,
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
            complaint = file_complaint(session, phone, address, channel, contacted_at, text, how)
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
