"""Subscribers: the holder of a number and the preferences they set."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow


class Subscriber(SQLModel, table=True):
    """A number holder's account and preferences, keyed by phone (shardable)."""

    phone: str = Field(primary_key=True, max_length=16)
    dnd_voice: bool = False
    dnd_sms: bool = False
    blocked_categories: str = Field(default="", max_length=300)  # comma-separated
    quiet_hours: str | None = Field(default=None, max_length=11)  # "HH:MM-HH:MM"
    language: str | None = Field(default=None, max_length=8)
    session_epoch: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
