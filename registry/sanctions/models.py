"""The sanction register: every suspension, lift and automatic flag, with its reason."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow

KINDS = ("suspension", "flag")


class Sanction(SQLModel, table=True):
    """A suspension of a sender or a whole organization, or a flag raised by the trigger.

    ``Sender.suspended_until`` / ``Organization.suspended_until`` are what the
    check reads (one indexed join); this table is the history behind them: the
    public register, the dates, who decided and why.
    """

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # suspension | flag
    organization_id: int = Field(foreign_key="organization.id", index=True)
    sender_id: int | None = Field(default=None, foreign_key="sender.id", index=True)
    reason: str = Field(max_length=500)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    automatic: bool = False
    created_by: str = Field(max_length=254)  # staff email or "system"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
