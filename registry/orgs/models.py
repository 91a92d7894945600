"""Organizations, their API keys, and delegations between them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

# ``gateway``: the SMS gateway carrying the registry's own number; its key is good
# only for the gateway endpoints (registry/api/gateway.py), never as a sender's.
# ``reporter``: a reporting platform filing complaints for holders who proved their
# number to it (registry/api/complaints.py); its key files and reads those only.
# ``lookup``: a phone app answering "who is calling me" (registry/lookup); its key is
# good only for ``GET /lookup``, never as a sender's (it learns nothing about holders).
ROLES = ("sender", "platform", "carrier", "regulator", "gateway", "reporter", "lookup")
SCOPES = ("check", "optout", "consent", "changes")
# What an organization IS in the chain of responsibility (谁接入、谁发送、谁制作), apart
# from what its key may DO (``role``). Call centers and port companies answer for
# what they send on others' behalf: each delegation to one carries a business
# filing (业务备案, ``DelegationFiling``).
KINDS = ("merchant", "call_center", "sms_port", "platform", "carrier", "other")
FILING_REQUIRED = frozenset({"call_center", "sms_port"})
# The business type of a filing (业务类型).
BUSINESS_TYPES = ("marketing", "customer_service", "collection", "survey", "notification", "other")


class Organization(SQLModel, table=True):
    """A legal entity that asks, records or reports: it answers for its senders."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16, default="sender")
    kind: str = Field(
        max_length=16, default="merchant", sa_column_kwargs={"server_default": "merchant"}
    )
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


class DelegationFiling(SQLModel, table=True):
    """业务备案: the outsourced business a delegation is for, filed and altered by the principal.

    Required when the agent is a call center or an SMS port company (``FILING_REQUIRED``);
    the regulator sees it, and a holder sees it where it explains a contact
    ("Blue Sky Call Center, calling for Acme Bank about credit cards").
    """

    __tablename__ = "delegation_filing"

    delegation_id: int = Field(foreign_key="delegation.id", primary_key=True, sa_type=BigId)
    business_name: str = Field(max_length=200)
    business_type: str = Field(max_length=32)  # one of BUSINESS_TYPES
    targets: str = Field(max_length=1000)  # whom the business contacts
    content: str = Field(max_length=2000)  # what it tells them
    contact_name: str = Field(max_length=100)
    contact_phone: str = Field(max_length=16)  # E.164
    filed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DelegationFilingAddress(SQLModel, table=True):
    """An outbound address a filed business uses: one of the delegated senders' addresses."""

    __tablename__ = "delegation_filing_address"

    delegation_id: int = Field(
        foreign_key="delegation_filing.delegation_id", primary_key=True, sa_type=BigId
    )
    address: str = Field(max_length=32, primary_key=True, index=True)
