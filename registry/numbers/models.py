"""Number lifecycle: the ranges carriers hold, and their reports of permanent disconnection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow


class NumberRange(SQLModel, table=True):
    """An E.164 prefix (号段) held by a carrier organization.

    The regulator assigns ranges to carriers (``parent_id`` empty); a host
    carrier may sub-assign a longer prefix of one of its own ranges to an MVNO
    (``parent_id``: the host's range). The live range with the longest prefix
    that starts a number names the one carrier that speaks for that number.
    """

    __tablename__ = "number_range"
    __table_args__ = (
        # One live holder per exact prefix (overlaps are refused by the service;
        # this catches two officers assigning the same prefix at the same moment).
        Index(
            "uq_number_range_live_prefix",
            "prefix",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index("ix_number_range_organization_id", "organization_id"),
        Index("ix_number_range_parent_id", "parent_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    prefix: str = Field(max_length=16)  # "+" and 1 to 15 digits, starting with a country code
    organization_id: int = Field(foreign_key="organization.id")
    parent_id: int | None = Field(default=None, foreign_key="number_range.id", sa_type=BigId)
    assigned_by: str = Field(max_length=100)  # "staff:<email>", "cli", "carrier:<slug>"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=100)


class Disconnection(SQLModel, table=True):
    """A number was permanently disconnected at a time; its next holder inherits nothing.

    A retracted disconnection (``retracted_at``) stays as history but no longer
    counts: what it voided was restored when it was retracted. Distributed by
    phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

    __table_args__ = (
        Index("ix_disconnection_phone_at", "phone", "disconnected_at"),
        # The same report twice is one disconnection; a retracted one may be reported again.
        Index(
            "uq_disconnection_live_phone_at",
            "phone",
            "disconnected_at",
            unique=True,
            sqlite_where=text("retracted_at IS NULL"),
            postgresql_where=text("retracted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    disconnected_at: datetime = Field(sa_type=UTCDateTime)
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retracted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    retracted_by: str | None = Field(default=None, max_length=100)  # "carrier:<slug>", "staff:…"
    retraction_reason: str | None = Field(default=None, max_length=500)
