"""Regulator staff accounts and the audit trail of what they did."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow

STAFF_ROLES = ("viewer", "officer")


class StaffUser(SQLModel, table=True):
    """A regulator's account: argon2 password hash, TOTP secret, role, lock-out state."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    password_hash: str = Field(max_length=200)
    totp_secret: str = Field(max_length=64)
    role: str = Field(max_length=16, default="viewer")
    # A sector desk (registry/complaints/sectors.py): the account answers the
    # complaints referred to that sector. None: the general desk.
    sector: str | None = Field(default=None, max_length=32)
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The last TOTP time step accepted: a code is good for one sign-in only.
    last_totp_step: int = 0
    # Bumped on sign-out: every staff cookie issued before stops working.
    session_epoch: int = 0
    disabled: bool = False
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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
