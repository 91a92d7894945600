"""Events: immutable, per-phone records of every change, from which state is derived."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

# Event types, by subject:
#   consent.created / consent.confirmed / consent.revoked / consent.expired
#   consent.voided / consent.restored (a retracted disconnection gave it back)
#   optout.recorded
#   preferences.changed
#   number.disconnected / number.disconnection_retracted
#   claim.recorded (a sender forwarded a "Y"/"START": kept, acted on never; consent/claims.py)
#   organization.sanctioned / organization.sanction_lifted (issue 17: no phone, phone "")
#   complaint.forwarded (issue 16: a complaint routed to ``organization_id``, which alone reads it)
TYPES = (
    "consent.created", "consent.confirmed", "consent.revoked", "consent.expired",
    "consent.voided", "consent.restored", "optout.recorded", "preferences.changed",
    "number.disconnected", "number.disconnection_retracted", "claim.recorded",
    "organization.sanctioned", "organization.sanction_lifted", "complaint.forwarded",
)  # fmt: skip


class Event(SQLModel, table=True):
    """One change, attributed (who, through what), keyed by phone so it can be sharded.

    Distributed by phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

    __table_args__ = (
        Index("ix_event_phone_id", "phone", "id"),
        Index("ix_event_consent_id", "consent_id"),
        # The feed's sequence: NULL until the sealer numbers the event after its
        # commit (registry/events/sealing.py), one sealer at a time under its lock.
        # Not unique: a unique key must hold the phone, which the table is
        # distributed by (registry/shards.py); (phone, seq) is.
        Index("ix_event_seq", "seq"),
        Index("ix_event_phone_seq", "phone", "seq", unique=True),  # a phone's chain head
        # The console's list of claims, newest first; partial, so the hot writers
        # of every other event type never maintain it.
        Index(
            "ix_event_claim",
            "organization_id",
            "id",
            postgresql_where=text("type = 'claim.recorded'"),
            sqlite_where=text("type = 'claim.recorded'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    type: str = Field(max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sender_id: int | None = Field(default=None, foreign_key="sender.id", index=True)
    consent_id: int | None = Field(default=None, sa_type=BigId)
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    agent_id: int | None = Field(default=None, foreign_key="organization.id")
    actor: str = Field(max_length=100)  # "org:<slug>", "subscriber", "carrier:<slug>", "system"
    via: str = Field(max_length=16)  # api, site, sms, otp, cli, system
    channels: str | None = Field(default=None, max_length=16)
    category: str | None = Field(default=None, max_length=32)
    state: str | None = Field(default=None, max_length=16)  # the subject's state after the event
    data: str | None = Field(default=None, max_length=4000)  # JSON detail (evidence, settings)
    # The change feed's number and the per-phone hash chain, given after commit by the
    # sealer, in commit order (registry/events/sealing.py); never by the writer.
    seq: int | None = Field(default=None, sa_type=BigId)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)
