"""The check log: who asked about which number, and what the registry answered."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow


class CheckBatch(SQLModel, table=True):
    """One batch request; its numbers are rows of the check log that point here."""

    __tablename__ = "check_batch"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    organization_id: int = Field(foreign_key="organization.id")
    agent_id: int | None = Field(default=None, foreign_key="organization.id")
    sender_id: int = Field(foreign_key="sender.id")
    channel: str = Field(max_length=8)
    purpose: str = Field(max_length=16)
    category: str = Field(max_length=32)
    size: int
    allowed: int
    denied: int
    invalid: int
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CheckLog(SQLModel, table=True):
    """Every answered check; evidence for complaints and for "who checked my number".

    The largest and fastest-growing table, written once per check, so: no
    foreign keys (each would be one more index probe per insert, and a link
    across shards; the ids it holds are kept, never deleted, by their tables),
    and on PostgreSQL partitioned by month of ``checked_at`` (migration 0022,
    ``checks/partitions.py``: new months made ahead, expired ones dropped
    whole). The primary key there is (id, checked_at, phone): a partitioned
    table's must hold its partition key, and a table distributed by phone
    its phone (migration 0026); SQLite keeps a plain table. The batch
    index is partial: single checks (no batch) do not write it at all.
    """

    __tablename__ = "check_log"
    __table_args__ = (
        Index("ix_check_log_phone_checked_at", "phone", "checked_at"),
        Index("ix_check_log_sender_checked_at", "sender_id", "checked_at"),
        Index(
            "ix_check_log_batch_id",
            "batch_id",
            sqlite_where=text("batch_id IS NOT NULL"),
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16)
    sender_id: int  # sender.id
    organization_id: int  # organization.id: the sender's owner
    agent_id: int | None = None  # organization.id: who asked for it, for another
    channel: str = Field(max_length=8)
    purpose: str = Field(max_length=16)
    category: str = Field(max_length=32)
    decision: str = Field(max_length=8)
    reason: str = Field(max_length=32)
    consent_id: int | None = Field(default=None, sa_type=BigId)
    at: datetime = Field(sa_type=UTCDateTime)  # the contact time asked about
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    batch_id: int | None = Field(default=None, sa_type=BigId)  # check_batch.id
    # The chain (issue 15): the calling address the check named (``from``) and the
    # carrier that connects it; a carrier's network-side check names itself here.
    address: str | None = Field(default=None, max_length=32)
    carrier_id: int | None = None  # organization.id (the log has no foreign keys)
    asked_by_id: int | None = None  # organization.id


class ContactTally(SQLModel, table=True):
    """The marketing allows counted for one capped holder, channel and local week (checks/tally.py).

    One row holds the week's total and each day's count (``day0`` is Monday),
    so that one conditional upsert checks both limits and counts both at once.
    """

    __tablename__ = "contact_tally"

    phone: str = Field(primary_key=True, max_length=16)
    channel: str = Field(primary_key=True, max_length=8)
    week: date = Field(primary_key=True)  # the local Monday
    total: int = 0
    day0: int = 0
    day1: int = 0
    day2: int = 0
    day3: int = 0
    day4: int = 0
    day5: int = 0
    day6: int = 0


class FactChange(SQLModel, table=True):
    """A number (or calling address) whose facts changed, and when, on the primary.

    A check whose facts were read on a standby confirms, in its log row's
    insert on the primary, that its number has no change recorded since the
    standby may lack commits (checks/facts.py, ``NO_RECENT_CHANGE``): one probe
    of this table's primary key instead of one per kind of fact.

    Written on PostgreSQL by triggers (migration 0025), in the transaction of
    every insert, update and delete of ``opt_out``, ``consent``,
    ``subscriber``, ``cap_exemption``, ``disconnection`` (its number) and
    ``sender_address`` (the address): so no writer, present or future, can
    forget it. Append only (no lock that two writers could wait on); the time
    is the primary's clock. ``registry worker`` deletes rows older than any
    standby's window (``prune_fact_changes``). SQLite has no standbys: the
    table stays empty there.
    """

    __tablename__ = "fact_change"

    phone: str = Field(primary_key=True, max_length=32)  # a number, or a calling address
    changed_at: datetime = Field(primary_key=True, sa_type=UTCDateTime)


class CheckSpool(SQLModel, table=True):
    """An app server's local spool of check-log rows (checks/spool.py): its id namespace.

    A spool takes one row here while the primary is up; the log rows it writes
    during a primary outage carry the ids ``-(id * 2**32 + n)``, which no other
    spool and no row of the primary's own sequence can hold.
    """

    __tablename__ = "check_spool"

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)  # the app server's host name, for the regulator
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
