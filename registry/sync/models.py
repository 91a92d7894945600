"""Watchlists and webhooks: what a platform follows and where it is told."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow


class Watch(SQLModel, table=True):
    """A number an organization follows for preference and disconnection changes.

    Keyed by phone first, like every hot table, so it shards with the events.
    """

    phone: str = Field(max_length=16, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", primary_key=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Webhook(SQLModel, table=True):
    """A URL that receives an organization's changes, with its delivery cursor.

    Deliveries are derived from the sequenced feed: ``cursor`` is the last
    ``seq`` the receiver acknowledged with a 2xx, committed only after that
    answer, so a crash re-sends (same delivery id) and never skips.
    """

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=64)
    cursor: int = Field(default=0, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    status: str = Field(default="active", max_length=16)  # active | disabled
    disabled_reason: str | None = Field(default=None, max_length=500)
    failures: int = Field(default=0)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    last_delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
