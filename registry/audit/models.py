"""The staff audit trail's table: one row per console, CLI or system action."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow


class StaffAudit(SQLModel, table=True):
    """One staff action (or sign-in attempt): who, what, on which subject, from where.

    Kept apart from the per-phone event log on purpose: most staff actions have
    no phone (suspending an organization, creating a key, signing in), the event
    log is keyed and sharded by phone and feeds the holders' history and the
    change feed, and a regulator's audit trail must be readable as one ordered
    list per officer.
    """

    __tablename__ = "staff_audit"
    __table_args__ = (Index("ix_staff_audit_staff_id_id", "staff_id", "id"),)

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite")
    )
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    staff_id: int | None = Field(default=None, foreign_key="staff_user.id")
    actor: str = Field(max_length=254)  # the email, or "cli" / "system"
    action: str = Field(max_length=48)  # e.g. "login.failed", "complaint.reply", "sender.suspend"
    subject: str | None = Field(default=None, max_length=100)  # e.g. "complaint:12", "org:acme"
    data: str | None = Field(default=None, max_length=4000)  # JSON detail
    ip: str | None = Field(default=None, max_length=45)
