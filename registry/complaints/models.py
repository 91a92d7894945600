"""Complaints and their message threads.

STAND-IN: the citizen site (issue 4, branch ``site``) owns this domain; this
minimal version lets the console be built and tested before it lands, and is
replaced by the site's at merge.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow

STATUSES = ("open", "answered", "closed")


class Complaint(SQLModel, table=True):
    """A holder's report of an unwanted call or text, matched to a sender when possible."""

    __table_args__ = (
        Index("ix_complaint_phone_id", "phone", "id"),
        Index("ix_complaint_status_created_at", "status", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=16)
    address: str = Field(max_length=32)  # the number or SMS port the contact came from
    sender_id: int | None = Field(default=None, foreign_key="sender.id", index=True)
    organization_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    # The agent (call center, SMS port) whose check the verdict rests on, when
    # an agent checked for the principal's sender: the complaint then counts
    # against both. Set when filed, from the check log as of the contact time.
    agent_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    # The carrier that connects ``address`` (its attestation, else the check's), when known.
    carrier_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    channel: str = Field(max_length=8)
    contacted_at: datetime = Field(sa_type=UTCDateTime)
    text: str | None = Field(default=None, max_length=2000)
    status: str = Field(default="open", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ComplaintMessage(SQLModel, table=True):
    """One message of a complaint's thread, from the holder or the regulator."""

    __tablename__ = "complaint_message"

    id: int | None = Field(default=None, primary_key=True)
    complaint_id: int = Field(foreign_key="complaint.id", index=True)
    author: str = Field(max_length=254)  # "holder" or "regulator:<staff email>"
    body: str = Field(max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ComplaintSubmission(SQLModel, table=True):
    """A site form's one-time token, and what sending it made (a complaint or a holder's message).

    The token is the primary key: a form sent twice (a double click, a
    reloaded POST, a replay) finds the row of the first sending and shows what
    it made instead of making it again, even when both arrive at once.
    """

    __tablename__ = "complaint_submission"

    token: str = Field(primary_key=True, max_length=64)
    phone: str = Field(max_length=16)
    complaint_id: int = Field(foreign_key="complaint.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="complaint_message.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
