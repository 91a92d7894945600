"""Senders: the identities that contact people, each owned by one organization."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

CATEGORIES = (
    "finance", "insurance", "real_estate", "education", "health", "employment",
    "travel", "retail", "automotive", "telecom", "food", "other",
)  # fmt: skip


class Sender(SQLModel, table=True):
    """A sender ("who sends is responsible"): code, display name, default category."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    code: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=32)
    suspended_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    suspension_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SenderAddress(SQLModel, table=True):
    """A caller number, SMS port or short code a sender contacts people from."""

    __tablename__ = "sender_address"

    id: int | None = Field(default=None, primary_key=True)
    sender_id: int = Field(foreign_key="sender.id", index=True)
    address: str = Field(max_length=32, unique=True)
    # A suspension of this one address (issue 17): complaints and the register name it.
    suspended_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The attestation (issue 15): usable as a check's ``from`` only while attested and
    # not withdrawn. ``attested_via``: "connection" (a carrier's access relation,
    # registry/access) or "code" (a one-time code texted to the address, for addresses
    # outside every registered range). ``carrier_id``: the carrier that connects it.
    attested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attested_via: str | None = Field(default=None, max_length=16)
    carrier_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    connection_id: int | None = Field(default=None, foreign_key="connection.id", sa_type=BigId)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
