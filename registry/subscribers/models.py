"""Subscribers: the holder of a number and the preferences they set."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.db import BigId
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


class LoginCode(SQLModel, table=True):
    """A 6-digit sign-in code texted to a number: stored hashed, short-lived, few tries."""

    __tablename__ = "login_code"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16, index=True)
    code_hash: str = Field(max_length=64)
    attempts: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HolderSession(SQLModel, table=True):
    """One signed-in browser of the site, known to the server so that signing out ends it.

    The session cookie carries a random token; only its SHA-256 is stored, so
    a copy of this table opens no session. Signing out sets ``ended_at``: a
    copy of the cookie taken before is refused from then on.
    """

    __tablename__ = "holder_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    phone: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
