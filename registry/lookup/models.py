"""The lookup log: every "who is calling me" question, for the regulator."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow


class LookupLog(SQLModel, table=True):
    """One lookup of a calling number: by which app (or the site), and what it found.

    The holder who asked on the site is not recorded: the log shows the
    regulator how the lookup is used, and the rate limits (per key, per client,
    per holder) stop abuse without a record of who wondered about which caller.
    """

    __tablename__ = "lookup_log"
    __table_args__ = (
        Index("ix_lookup_log_looked_up_at", "looked_up_at"),
        Index("ix_lookup_log_organization_id_looked_up_at", "organization_id", "looked_up_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    address: str = Field(max_length=32)  # the calling number as normalised
    via: str = Field(max_length=8)  # "api" (a phone app's key) or "site" (a signed-in holder)
    organization_id: int | None = Field(default=None, foreign_key="organization.id")  # the app
    sender_id: int | None = Field(default=None, foreign_key="sender.id")  # None: not registered
    looked_up_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
