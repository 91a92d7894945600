"""Organizations, their API keys, and delegations between them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.db import BigId
from registry.timeutil import UTCDateTime, utcnow

# ``gateway``: the SMS gateway carrying the registry's own number; its key is good
# only for the gateway endpoints (registry/api/gateway.py), never as a sender's.
# ``reporter``: a reporting platform filing complaints for holders who proved their
# number to it (registry/api/complaints.py); its key files and reads those only.
ROLES = ("sender", "platform", "carrier", "regulator", "gateway", "reporter")
SCOPES = ("check", "optout", "consent", "changes")


class Organization(SQLModel, table=True):
    """A legal entity that asks, records or reports: it answers for its senders."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16, default="sender")
    suspended_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    suspension_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # 统一社会信用代码 (GB 32100-2015): 18 characters, the last a check character.
    credit_code: str | None = Field(default=None, max_length=18, unique=True)
    region: str | None = Field(default=None, max_length=64)  # province or region, free text
    # On the credit list until then: no new senders, addresses, keys or delegations.
    listed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Bumped by every enforcement action: two officers acting at once cannot both win.
    version: int = Field(default=0)


class ApiKey(SQLModel, table=True):
    """An API key: shown once, stored as a SHA-256 hash, found by its prefix."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    name: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Delegation(SQLModel, table=True):
    """A principal lets an agent act for some of its senders, within scopes."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    principal_id: int = Field(foreign_key="organization.id", index=True)
    agent_id: int = Field(foreign_key="organization.id", index=True)
    scopes: str = Field(max_length=100)  # comma-separated subset of SCOPES
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DelegationSender(SQLModel, table=True):
    """One sender covered by a delegation, keyed for the agent's one lookup per call."""

    __tablename__ = "delegation_sender"

    delegation_id: int = Field(foreign_key="delegation.id", primary_key=True, sa_type=BigId)
    sender_id: int = Field(foreign_key="sender.id", primary_key=True)
    agent_id: int = Field(foreign_key="organization.id", index=True)
