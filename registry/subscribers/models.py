"""Subscribers: the holder of a number and the preferences they set."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow


class Subscriber(SQLModel, table=True):
    """A number holder's account and preferences, keyed by phone (shardable)."""

    phone: str = Field(primary_key=True, max_length=16)
    dnd_voice: bool = False
    dnd_sms: bool = False
    blocked_categories: str = Field(default="", max_length=300)  # comma-separated
    quiet_hours: str | None = Field(default=None, max_length=11)  # "HH:MM-HH:MM"
    # The cap on marketing contacts from all senders, per channel: "sms=3/10,voice=/2"
    # (per local day / per local week; empty: no limit). Counted in contact_tally.
    frequency_caps: str | None = Field(default=None, max_length=40)
    # When the refusals set for a time end: "sms=<ISO UTC>,finance=<ISO UTC>" (a
    # channel's DND, a category's block); a refusal not named here lasts until lifted.
    refusal_ends: str | None = Field(default=None, max_length=800)
    language: str | None = Field(default=None, max_length=8)
    session_epoch: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CapExemption(SQLModel, table=True):
    """A sender the holder lets always reach them: its allows neither count nor stop at the cap."""

    __tablename__ = "cap_exemption"

    phone: str = Field(primary_key=True, max_length=16)
    sender_id: int = Field(primary_key=True, foreign_key="sender.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RefusalNotice(SQLModel, table=True):
    """The text telling a holder that a refusal they set for a time is about to end (sent once)."""

    __tablename__ = "refusal_notice"

    phone: str = Field(primary_key=True, max_length=16)
    # "dnd:sms", "category:finance" or "optout:<id>", and the end it announces.
    refusal: str = Field(primary_key=True, max_length=40)
    ends_at: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LoginCode(SQLModel, table=True):
    """A 6-digit sign-in code texted to a number: stored hashed, short-lived, few tries.

    Distributed by phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

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


def parse_caps(text: str | None) -> tuple[tuple[str, int | None, int | None], ...]:
    """Read ``Subscriber.frequency_caps`` ("sms=3/10,voice=/2") as (channel, per day, per week)."""
    if not text:
        return ()
    out = []
    for part in text.split(","):
        channel, _, limits = part.partition("=")
        day, _, week = limits.partition("/")
        out.append((channel, int(day) if day else None, int(week) if week else None))
    return tuple(out)


def parse_ends(text: str | None) -> tuple[tuple[str, datetime], ...]:
    """Read ``Subscriber.refusal_ends`` ("sms=2027-03-01T00:00:00Z,...") as (refusal, end)."""
    if not text:
        return ()
    return tuple(
        (key, datetime.fromisoformat(value))
        for key, _, value in (part.partition("=") for part in text.split(","))
    )
