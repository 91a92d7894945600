"""Number lifecycle: carriers' reports of permanent disconnection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from registry.db import BigId
from registry.timeutil import UTCDateTime, utcnow


class Disconnection(SQLModel, table=True):
    """A number was permanently disconnected at a time; its next holder inherits nothing."""

    __table_args__ = (Index("ix_disconnection_phone_at", "phone", "disconnected_at", unique=True),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    disconnected_at: datetime = Field(sa_type=UTCDateTime)
    organization_id: int | None = Field(default=None, foreign_key="organization.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
