"""Consents with evidence, opt-outs, OTP consent requests, and their history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

CHANNELS = ("voice", "sms")
STATUSES = ("pending", "active", "revoked", "expired", "void")


class Consent(SQLModel, table=True):
    """A holder's permission for one sender on some channels, with its evidence.

    The row is the current state; its ``Event`` rows (``consent.*``) are the
    history it is derived from. Distributed by phone (``registry/shards.py``):
    on PostgreSQL the primary key is (id, phone) (migration 0026); the push's
    idempotency key is ``ConsentKey``, not a constraint here.
    """

    __table_args__ = (Index("ix_consent_phone_sender", "phone", "sender_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    sender_id: int = Field(foreign_key="sender.id", index=True)
    organization_id: int = Field(foreign_key="organization.id")  # who recorded it
    agent_id: int | None = Field(default=None, foreign_key="organization.id")
    channels: str = Field(max_length=16)  # "sms", "voice" or "sms,voice"
    category: str | None = Field(default=None, max_length=32)
    status: str = Field(max_length=8)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pending_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    external_id: str | None = Field(default=None, max_length=128)
    evidence_method: str = Field(max_length=32)
    evidence_captured_at: datetime = Field(sa_type=UTCDateTime)
    evidence_wording: str | None = Field(default=None, max_length=2000)
    evidence_reference: str | None = Field(default=None, max_length=500)
    evidence_sha256: str | None = Field(default=None, max_length=64)
    evidence_ip: str | None = Field(default=None, max_length=45)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The short reference the registry's confirmation text carries ("Y 4821"), so a
    # holder with several pending requests can say which one a reply means.
    reply_ref: str | None = Field(default=None, max_length=8)


class OptOut(SQLModel, table=True):
    """A holder's refusal of one sender on some channels; wins over earlier consent.

    Distributed by phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

    __tablename__ = "opt_out"
    __table_args__ = (Index("ix_opt_out_phone_sender", "phone", "sender_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    sender_id: int = Field(foreign_key="sender.id", index=True)
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    agent_id: int | None = Field(default=None, foreign_key="organization.id")
    channels: str = Field(max_length=16)
    source: str = Field(max_length=32)
    text: str | None = Field(default=None, max_length=1000)
    received_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set when the holder lifts their own block on the site; the row stays as history.
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A block the holder set for a time ("for 3 months"): no longer counts from then
    # on; the refusals job marks it withdrawn at that time and says so in the feed.
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ConsentRequest(SQLModel, table=True):
    """A one-time code texted to the holder; confirming it creates an OTP consent.

    Distributed by phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

    __tablename__ = "consent_request"

    id: str = Field(primary_key=True, max_length=32)
    phone: str = Field(max_length=16, index=True)
    sender_id: int = Field(foreign_key="sender.id")
    organization_id: int = Field(foreign_key="organization.id")
    agent_id: int | None = Field(default=None, foreign_key="organization.id")
    channels: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=32)
    wording: str = Field(max_length=2000)
    code_hash: str = Field(max_length=128)
    attempts: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # consent.id, on the same phone; no foreign key (it would link two shards'
    # tables by id alone): otp.confirm sets it in the transaction that makes the consent.
    consent_id: int | None = Field(default=None, sa_type=BigId)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsentKey(SQLModel, table=True):
    """A consent push's idempotency key: the organization's ``external_id`` and its consent.

    Distributed by organization, not by phone (``registry/shards.py``): a
    retry names the organization and the key, so it finds the consent (phone
    and id: one shard) without searching every shard. The push writes it
    first in its transaction (consent/services.py, ``record_consent``).
    """

    __tablename__ = "consent_key"

    organization_id: int = Field(primary_key=True, foreign_key="organization.id")
    external_id: str = Field(primary_key=True, max_length=128)
    phone: str = Field(max_length=16)
    # consent.id on ``phone``; empty only inside the push's own transaction.
    consent_id: int | None = Field(default=None, sa_type=BigId)
