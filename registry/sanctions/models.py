"""The sanction register: every suspension, lift and automatic flag, with its reason."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow

KINDS = ("suspension", "flag")
# The measures an officer takes by hand (docs/enforcement.md), besides suspensions.
MEASURES = ("notice", "interview", "rectification", "fine", "listing")


class Sanction(SQLModel, table=True):
    """A suspension of a sender or a whole organization, or a flag raised by the trigger.

    ``Sender.suspended_until`` / ``Organization.suspended_until`` are what the
    check reads (one indexed join); this table is the history behind them: the
    public register, the dates, who decided and why.
    """

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # suspension | flag | one of MEASURES
    organization_id: int = Field(foreign_key="organization.id", index=True)
    sender_id: int | None = Field(default=None, foreign_key="sender.id", index=True)
    reason: str = Field(max_length=500)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    automatic: bool = False
    created_by: str = Field(max_length=254)  # staff email or "system"
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The measures of issue 17 (all optional: a suspension or a flag uses none of them).
    address: str | None = Field(default=None, max_length=32)  # suspension of one address
    # The carrier that connects the address (or the sender's addresses), when derivable.
    carrier_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    evidence: str | None = Field(default=None, max_length=1000)  # "complaints: 3, 9; checks: 41"
    minutes: str | None = Field(default=None, max_length=4000)  # interview minutes
    meets_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # interview date
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)  # rectification
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # rectified / fine paid
    illegal_gains: int | None = None  # yuan, as entered for a fine
    amount: int | None = None  # the fine, yuan
    lift_reason: str | None = Field(default=None, max_length=500)
    lifted_by: str | None = Field(default=None, max_length=254)


class PublicReview(SQLModel, table=True):
    """A quarter's public review: drafted from the data, reviewed, then published by the regulator.

    ``data`` is the JSON snapshot taken when the draft was made (industries and
    companies with the most verified complaints per 10,000 checks), so that a
    published review never changes under its readers.
    """

    __tablename__ = "public_review"

    id: int | None = Field(default=None, primary_key=True)
    quarter: str = Field(max_length=6, unique=True)  # YYYYQn
    status: str = Field(default="draft", max_length=16)  # draft | published
    data: str
    note: str | None = Field(default=None, max_length=4000)  # the regulator's words, published
    drafted_by: str = Field(max_length=254)
    drafted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_by: str | None = Field(default=None, max_length=254)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SanctionAppeal(SQLModel, table=True):
    """An organization's appeal of a sanction against it, through the API."""

    __tablename__ = "sanction_appeal"

    id: int | None = Field(default=None, primary_key=True)
    sanction_id: int = Field(foreign_key="sanction.id", index=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    grounds: str = Field(max_length=4000)
    status: str = Field(default="pending", max_length=16)  # pending | upheld | rejected
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
