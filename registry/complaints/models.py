"""Complaints, their message threads, and where each was routed (docs/complaints.md)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow

STATUSES = ("open", "answered", "closed")
# What the holder complains of (issue 16). ``fraud`` and ``threat`` go to the
# police channel and are never closed by the automatic verdict.
TYPES = (
    "no_consent", "after_refusal", "outside_hours", "too_frequent", "impersonation",
    "fraud", "threat",
)  # fmt: skip
POLICE_TYPES = ("fraud", "threat")
# How the complaint reached the registry (``Complaint.intake``; ``channel`` is the
# contact's own channel, voice or sms).
INTAKES = ("site", "reporter", "sms", "staff")
# How a reporting platform proved the holder holds the number before filing for them.
VERIFICATIONS = ("sms_code", "carrier_account", "device_sim")
# What an organization did about a complaint routed to it.
ACTIONS = ("stopped_contacting", "disciplined_channel", "refunded", "none", "other")
# Who a complaint is routed to: the organizations of the chain of responsibility
# (``routing.responsible``) and the sector desk.
ROLES = ("merchant", "agent", "carrier", "sector")


class Complaint(SQLModel, table=True):
    """A holder's report of an unwanted call or text, matched to a sender when possible."""

    __table_args__ = (
        Index("ix_complaint_phone_id", "phone", "id"),
        Index("ix_complaint_status_created_at", "status", "created_at"),
        # The desk's queue, oldest first, unfiltered: without it, a sort of every complaint.
        Index("ix_complaint_created_at_id", "created_at", "id"),
        # The dashboard's and the queue's overdue count, read from the index alone
        # (status, no answer, filed before): 1.3 s -> 0.07 s at a million complaints.
        Index("ix_complaint_status_answered_created", "status", "answered_at", "created_at"),
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
    type: str = Field(default="no_consent", max_length=16)
    intake: str = Field(default="site", max_length=16)
    police: bool = False  # fraud or threat: flagged for the police channel
    # The first complaint about the same contact (phone, address, channel, time):
    # a duplicate is kept and linked, never counted twice.
    duplicate_of: int | None = Field(default=None, foreign_key="complaint.id", index=True)
    entered_by: str | None = Field(default=None, max_length=254)  # staff email (telephone)
    # A reporting platform that filed for the holder, and how it says it verified
    # the number (VERIFICATIONS); the holder sees both.
    reporter_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    verification: str | None = Field(default=None, max_length=16)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verification_ref: str | None = Field(default=None, max_length=100)
    verdict: str | None = Field(default=None, max_length=32)  # the automatic verdict when routed
    sector: str | None = Field(default=None, max_length=32)  # the sector desk referred to
    # Deadlines (working days, registry/complaints/deadlines.py) and their stamps.
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ack_due: date | None = None
    final_due: date | None = None
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def reference(self) -> str:
        """Return the reference the holder is given (texted, shown on the site)."""
        return f"TS{self.id or 0:07d}"


class ComplaintMessage(SQLModel, table=True):
    """One message of a complaint's thread, from the holder or the regulator."""

    __tablename__ = "complaint_message"

    id: int | None = Field(default=None, primary_key=True)
    complaint_id: int = Field(foreign_key="complaint.id", index=True)
    author: str = Field(max_length=254)  # "holder" or "regulator:<staff email>"
    body: str = Field(max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ComplaintRoute(SQLModel, table=True):
    """A complaint forwarded to one organization (or sector desk), and its answer.

    One row per party: the merchant, its agent, the carrier once the chain of
    responsibility names it, and the sector desk. ``due_on`` is the last
    working day to answer; an answer after it is kept and marked ``late``.
    """

    __tablename__ = "complaint_route"
    __table_args__ = (
        Index("ix_complaint_route_org_due", "organization_id", "answered_at", "due_on"),
        # An organization's compliance view, from the index alone (docs/performance-stats.md).
        Index("ix_complaint_route_org_complaint", "organization_id", "complaint_id",
              "answered_at", "due_on", "overdue_at", "late"),
        Index("ix_complaint_route_complaint_party", "complaint_id", "role", "organization_id",
              unique=True),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    complaint_id: int = Field(foreign_key="complaint.id")
    role: str = Field(max_length=16)  # ROLES
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    sector: str | None = Field(default=None, max_length=32)  # role "sector" only
    forwarded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_on: date
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answered_by: str | None = Field(default=None, max_length=254)
    late: bool = False
    overdue_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # flagged by the sweep
    found: str | None = Field(default=None, max_length=2000)
    action: str | None = Field(default=None, max_length=32)  # ACTIONS
    attachments: str | None = Field(default=None, max_length=2000)  # JSON list of references
    dispute_receipt: str | None = Field(default=None, max_length=400)  # a signed check id
    dispute_valid: bool | None = None  # the receipt verified and matches the complaint


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
