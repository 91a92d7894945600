"""Staff accounts: create, sign in with password and TOTP, lock out after failures."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.admin.models import STAFF_ROLES, StaffUser
from registry.complaints.sectors import SECTORS
from registry.errors import Conflict, RegistryError, ValidationFailed

# Five wrong attempts (password or code) lock the account for fifteen minutes;
# each further failure while locked extends nothing (the lock is not a way to
# keep a real officer out forever), but the counter restarts only on success.
MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 12
ISSUER = "Anning registry"
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}")

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that timing does not say
# which staff accounts exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class SignInFailed(RegistryError):
    """Wrong email, password or code; the message never says which."""

    code = "unauthorized"
    status = 401


class AccountLocked(SignInFailed):
    """Too many failures: the account is locked until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__("too many failed attempts; the account is locked")
        self.until = until


@dataclass(frozen=True, slots=True)
class NewStaff:
    """A created account and what its holder needs once: the TOTP secret and URI."""

    user: StaffUser
    totp_secret: str
    provisioning_uri: str


def normalize_email(email: str) -> str:
    """Return the email trimmed and lower-cased, or raise ValidationFailed."""
    cleaned = email.strip().lower()
    if not EMAIL.fullmatch(cleaned):
        raise ValidationFailed("not an email address", field="email")
    return cleaned


def create_staff(
    session: Session, email: str, password: str, role: str = "viewer", sector: str | None = None
) -> NewStaff:
    """Create a staff account with an argon2 password hash and a fresh TOTP secret.

    ``sector``: the sector desk the account belongs to (registry/complaints/sectors.py).
    """
    email = normalize_email(email)
    if role not in STAFF_ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}", field="role")
    if sector is not None and sector not in SECTORS:
        raise ValidationFailed(f"sector must be one of {', '.join(SECTORS)}", field="sector")
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"the password needs at least {MIN_PASSWORD} characters", field="password"
        )
    if session.scalar(select(col(StaffUser.id)).where(col(StaffUser.email) == email)) is not None:
        raise Conflict(f"a staff account {email!r} exists", field="email")
    secret = pyotp.random_base32()
    user = StaffUser(
        email=email,
        password_hash=_hasher.hash(password),
        totp_secret=secret,
        role=role,
        sector=sector,
    )
    session.add(user)
    session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    return NewStaff(user, secret, uri)


def get_staff(session: Session, staff_id: int) -> StaffUser | None:
    """Return an enabled staff account by id."""
    user = session.get(StaffUser, staff_id)
    return user if user is not None and not user.disabled else None


def list_staff(session: Session) -> list[StaffUser]:
    """Return every staff account, by email."""
    return list(session.scalars(select(StaffUser).order_by(col(StaffUser.email))))


def count_staff(session: Session) -> int:
    """Return how many staff accounts exist."""
    return int(session.scalar(select(func.count()).select_from(StaffUser)) or 0)


def _totp_step(secret: str, code: str, now: datetime) -> int | None:
    """Return the time step the code belongs to (now, or one step either side), or None."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == totp.digits):
        return None
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            return int(totp.timecode(at))
    return None


def sign_in(session: Session, email: str, password: str, code: str, now: datetime) -> StaffUser:
    """Check password and TOTP code; count failures and lock; return the account.

    The caller commits whether this succeeds or raises, so that failures count.
    """
    try:
        email = normalize_email(email)
    except ValidationFailed:
        email = ""
    user = session.scalar(select(StaffUser).where(col(StaffUser.email) == email)) if email else None
    if user is None or user.disabled:
        _verify(_DUMMY_HASH, password)
        raise SignInFailed("the email, password or code is wrong")
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked(user.locked_until)
    failures = _claim_try(session, user, now)
    step = (
        _totp_step(user.totp_secret, code, now) if _verify(user.password_hash, password) else None
    )
    if step is None or step <= user.last_totp_step:
        if failures >= MAX_FAILURES:
            user.failed_logins = 0
            user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            session.flush()
            raise AccountLocked(user.locked_until)
        session.flush()
        raise SignInFailed("the email, password or code is wrong")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_totp_step = step
    user.last_login_at = now
    session.flush()
    return user


def _claim_try(session: Session, user: StaffUser, now: datetime) -> int:
    """Count this attempt before judging it; return the failures it would make, or raise AccountLocked.

    One conditional UPDATE (``failed_logins = failed_logins + 1`` while fewer
    than MAX_FAILURES and not locked): of any number of simultaneous attempts
    at most MAX_FAILURES are judged, on PostgreSQL too, where a concurrent
    claim waits for the row and then re-reads it. A right answer resets the
    counter; the caller commits whether sign-in succeeds or raises.
    """
    t = StaffUser.__table__  # type: ignore[attr-defined]
    claimed = session.execute(
        update(t)
        .where(
            t.c.id == user.id,
            t.c.failed_logins < MAX_FAILURES,
            or_(t.c.locked_until.is_(None), t.c.locked_until <= now),
        )
        .values(failed_logins=t.c.failed_logins + 1)
        .returning(t.c.failed_logins)
    ).first()
    # The row changed under the ORM object (and may have been changed by an attempt
    # we waited for): read the counters, and the last code used, again.
    session.expire(user, ["failed_logins", "locked_until", "last_totp_step"])
    if claimed is None:  # locked by attempts that arrived at the same time
        raise AccountLocked(user.locked_until or now + timedelta(minutes=LOCK_MINUTES))
    return int(claimed.failed_logins)


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def sign_out_everywhere(session: Session, user: StaffUser) -> None:
    """Invalidate every staff cookie issued to this account."""
    user.session_epoch += 1
    session.flush()


def unlock(session: Session, user: StaffUser) -> None:
    """Lift a lock-out (an officer's action on another account)."""
    user.locked_until = None
    user.failed_logins = 0
    session.flush()
