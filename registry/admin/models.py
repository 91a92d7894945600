"""Regulator staff accounts (their audit trail is ``registry.audit``)."""

from __future__ import annotations

from datetime import datetime

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
