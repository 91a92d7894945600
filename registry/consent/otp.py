"""OTP-confirmed consent: the registry texts a code; the code, typed back, is the evidence."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from registry.config import Settings
from registry.consent import services as consents
from registry.consent.models import Consent, ConsentRequest
from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.events.services import Actor
from registry.senders.services import SenderRef
from registry.sms import services as sms
from registry.timeutil import utcnow

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5


def hash_code(settings: Settings, request_id: str, code: str) -> str:
    """Return the keyed hash of a code; the code itself is never stored."""
    key = settings.secret_key.encode()
    return hmac.new(key, f"{request_id}:{code}".encode(), hashlib.sha256).hexdigest()


def request_consent(
    session: Session,
    settings: Settings,
    actor: Actor,
    sender: SenderRef,
    phone: str,
    channels: list[str],
    wording: str,
    category: str | None = None,
    text_gate: consents.TextGate | None = None,
) -> tuple[ConsentRequest, str]:
    """Text the holder a one-time code naming the sender and purpose; return the request and code.

    ``text_gate`` is asked first (the number's budget of consent texts): when
    it refuses, nothing is recorded or sent.
    """
    chans = consents.channels_text(channels)
    if not wording.strip():
        raise ValidationFailed("wording must say what the holder agrees to", field="wording")
    if text_gate is not None:
        text_gate(phone)
    request_id = secrets.token_hex(12)
    code = f"{secrets.randbelow(1_000_000):06d}"
    req = ConsentRequest(
        id=request_id,
        phone=phone,
        sender_id=sender.id,
        organization_id=actor.org_id or sender.organization_id,
        agent_id=actor.agent_id,
        channels=chans,
        category=category,
        wording=wording.strip(),
        code_hash=hash_code(settings, request_id, code),
        expires_at=utcnow() + CODE_TTL,
    )
    session.add(req)
    session.flush()
    topic = f"（{category}）" if category else ""
    sms.send(
        session,
        phone,
        f"【Anning】验证码 {code}：{sender.name} 请求向您发送营销信息{topic}：“{wording.strip()[:120]}”。"
        f"告知对方此验证码即表示同意，10 分钟内有效。不同意请忽略。",
        "consent_otp",
    )
    return req, code


def get_request(session: Session, request_id: str) -> ConsentRequest:
    """Return a consent request (locked for update where the database can) or raise NotFound."""
    req = session.get(ConsentRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFound("no such consent request")
    return req


def confirm_request(
    session: Session,
    settings: Settings,
    actor: Actor,
    sender: SenderRef,
    req: ConsentRequest,
    code: str,
) -> Consent | ValidationFailed:
    """Check the code; on success create an active consent with evidence method ``otp``.

    A wrong code counts a try even when the caller then sends the right one;
    after five wrong tries the request is locked for good. The counted try is
    written and the refusal *returned*, for the caller to commit before it
    answers with it; every refusal this raises writes nothing.
    """
    if req.sender_id != sender.id or req.organization_id != actor.org_id:
        raise Forbidden("that consent request belongs to another organization")
    if req.consent_id is not None:
        raise Conflict("the code was already used")
    if req.attempts >= MAX_TRIES:
        raise Conflict("too many wrong codes; the request is locked, start a new one")
    if req.expires_at <= utcnow():
        raise Conflict("the code has expired; start a new request")
    if not hmac.compare_digest(req.code_hash, hash_code(settings, req.id, code.strip())):
        req.attempts += 1
        session.flush()
        left = MAX_TRIES - req.attempts
        return ValidationFailed(
            f"wrong code; {left} tries left" if left else "wrong code; the request is now locked",
            field="code",
        )
    evidence = consents.Evidence(
        method="otp",
        captured_at=utcnow(),
        wording=req.wording,
        reference=f"consent-request:{req.id}",
    )
    consent, _ = consents.create_consent(
        session,
        settings,
        actor,
        sender,
        req.phone,
        req.channels.split(","),
        evidence,
        category=req.category,
        confirmed=True,
    )
    req.consent_id = consent.id
    return consent
