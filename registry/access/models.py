"""Access relations (谁接入谁负责): a carrier connects an organization at an address.

A carrier records each line or port it connects: the organization it connects
(a merchant, a call center, an SMS port company), what kind of access it is,
and the address that organization may present there (a calling number, a
95/96/400/106 number, an SMS port). The live connection is the carrier's
attestation of that address; withdrawing it (the line is disconnected, the
contract ends) takes the address out of use at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

KINDS = ("sms_port", "trunk", "enterprise_line")


class Connection(SQLModel, table=True):
    """One address a carrier connects for one organization, live until withdrawn."""

    __table_args__ = (
        # One live connection per address: no address is connected for two organizations.
        Index(
            "uq_connection_live_address",
            "address",
            unique=True,
            sqlite_where=text("withdrawn_at IS NULL"),
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
        Index("ix_connection_carrier_id", "carrier_id"),
        Index("ix_connection_organization_id", "organization_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    carrier_id: int = Field(foreign_key="organization.id")
    organization_id: int = Field(foreign_key="organization.id")  # the organization connected
    kind: str = Field(max_length=16)  # one of KINDS
    address: str = Field(max_length=32)  # E.164, or the digits of an SMS port or short code
    created_by: str = Field(max_length=100)  # "carrier:<slug>", "cli", "demo"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_by: str | None = Field(default=None, max_length=100)
    withdrawal_reason: str | None = Field(default=None, max_length=500)


class AddressProof(SQLModel, table=True):
    """A one-time code texted to an address outside every range, to prove the sender holds it."""

    __tablename__ = "address_proof"

    id: str = Field(primary_key=True, max_length=24)
    sender_id: int = Field(foreign_key="sender.id", index=True)
    address: str = Field(max_length=32)
    code_hash: str = Field(max_length=64)
    attempts: int = Field(default=0)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
