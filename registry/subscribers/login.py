"""Sign-in by SMS code: prove you hold the number, nothing else."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.errors import Conflict, ValidationFailed
from registry.sms import services as sms
from registry.subscribers.models import HolderSession, LoginCode
from registry.subscribers.services import get_or_create
from registry.timeutil import utcnow

CODE_TTL = timedelta(minutes=5)
MAX_TRIES = 5


def _hash(settings: Settings, phone: str, code: str) -> str:
    return hmac.new(
        settings.secret_key.encode(), f"login:{phone}:{code}".encode(), hashlib.sha256
    ).hexdigest()


def send_code(session: Session, settings: Settings, phone: str, language: str | None) -> None:
    """Text a fresh 6-digit code; earlier unused codes for the number stop working."""
    now = utcnow()
    for old in session.scalars(
        select(LoginCode).where(col(LoginCode.phone) == phone, col(LoginCode.used_at).is_(None))
    ):
        old.used_at = now
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        LoginCode(phone=phone, code_hash=_hash(settings, phone, code), expires_at=now + CODE_TTL)
    )
    body = (
        f"Anning sign-in code: {code}. It expires in 5 minutes. Never share it."
        if language == "en"
        else f"【Anning】登录验证码 {code}，5 分钟内有效。请勿告诉他人。"
    )
    sms.send(session, phone, body, "login_code")


def verify_code(
    session: Session, settings: Settings, phone: str, code: str
) -> int | ValidationFailed:
    """Check the code; return the holder's session epoch, or the wrong code's refusal.

    A try is claimed before the code is judged, by one conditional UPDATE
    (``attempts = attempts + 1 WHERE attempts < MAX_TRIES``): however many
    requests arrive at once, at most MAX_TRIES of them are judged. On
    PostgreSQL a concurrent claim waits for the row and re-reads ``attempts``;
    SQLite's writers are serialized (BEGIN IMMEDIATE). A wrong code's counted
    try is written and its refusal *returned*, for the caller to commit before
    it answers; every refusal this raises writes nothing.
    """
    t = LoginCode.__table__  # type: ignore[attr-defined]
    latest = session.execute(
        select(t.c.id, t.c.attempts, t.c.expires_at)
        .where(t.c.phone == phone, t.c.used_at.is_(None))
        .order_by(t.c.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        raise Conflict("no code is waiting for this number; ask for a new one")
    if latest.attempts >= MAX_TRIES:
        raise Conflict("too many wrong codes; ask for a new one")
    if latest.expires_at <= utcnow():
        raise Conflict("the code has expired; ask for a new one")
    claimed = session.execute(
        update(t)
        .where(t.c.id == latest.id, t.c.used_at.is_(None), t.c.attempts < MAX_TRIES)
        .values(attempts=t.c.attempts + 1)
        .returning(t.c.code_hash)
    ).first()
    if claimed is None:  # the last tries went to requests that arrived at the same time
        raise Conflict("too many wrong codes; ask for a new one")
    if not hmac.compare_digest(claimed.code_hash, _hash(settings, phone, code.strip())):
        return ValidationFailed("that code is not right", field="code")
    session.execute(update(t).where(t.c.id == latest.id).values(used_at=utcnow()))
    holder = get_or_create(session, phone)
    return holder.session_epoch


def sign_out_everywhere(session: Session, phone: str) -> None:
    """End every session of this number (each carries the epoch it was opened at)."""
    holder = get_or_create(session, phone)
    holder.session_epoch += 1
    session.execute(
        update(HolderSession)
        .where(col(HolderSession.phone) == phone, col(HolderSession.ended_at).is_(None))
        .values(ended_at=utcnow())
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, phone: str) -> str:
    """Start a server-side session for a holder who just proved the number; return its token.

    The token goes into the (signed) session cookie; the server keeps only its
    hash, and the session lives only as long as that row says it does.
    """
    token = secrets.token_urlsafe(32)
    session.add(HolderSession(token_hash=_token_hash(token), phone=phone))
    session.flush()
    return token


def session_phone(session: Session, token: str | None) -> str | None:
    """Return the number a live session token was opened for, or None once it has ended."""
    if not token:
        return None
    row = session.get(HolderSession, _token_hash(token))
    if row is None or row.ended_at is not None:
        return None
    return row.phone


def end_session(session: Session, token: str | None) -> None:
    """End one session: a copy of its cookie opens nothing from now on."""
    if not token:
        return
    row = session.get(HolderSession, _token_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()
