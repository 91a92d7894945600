"""The SMS gateway: an outbox in the database and two real delivery backends.

``send`` only writes the message to the outbox inside the caller's transaction,
so a message exists exactly when the change that caused it was committed.
``deliver`` hands queued messages to the configured backend: ``console``
writes them to the log (and ``registry sms outbox`` lists them), ``http``
POSTs JSON to the gateway; failures stay queued with their error and are
retried by ``registry sms deliver`` / the worker, never dropped.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from flask import Response, current_app, g, has_request_context
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow

log = logging.getLogger("registry.sms")
MAX_ATTEMPTS = 8


def send(session: Session, phone: str, body: str, kind: str) -> SmsMessage:
    """Queue a text to ``phone`` in the current transaction."""
    message = SmsMessage(phone=phone, body=body[:1000], kind=kind)
    session.add(message)
    session.flush()
    if has_request_context():
        g.sms_queued = True  # delivered once the request has committed (see deliver_after_request)
    return message


def deliver_after_request(response: Response) -> Response:
    """Hand this request's queued messages to the gateway after its commit.

    A failure here never fails the request: the message stays queued with its
    error, and ``registry sms deliver`` (or the worker) retries it.
    """
    if g.pop("sms_queued", False):
        from registry.db import get_session

        try:
            deliver(get_session(), current_app.config["REGISTRY"], limit=20)
        except Exception:  # delivery is retried later; the request already succeeded
            log.exception("SMS delivery after request failed; it will be retried")
    return response


def _post(settings: Settings, message: SmsMessage) -> None:
    if not settings.sms_http_url:  # config refuses REGISTRY_SMS_BACKEND=http without it
        raise RuntimeError("REGISTRY_SMS_HTTP_URL is not set")
    # Every text the registry sends comes from its own number: the holder's
    # replies to it are the ones the gateway brings back (registry/api/gateway.py).
    payload = json.dumps(
        {
            "id": message.id,
            "from": settings.sms_number,
            "to": message.phone,
            "text": message.body,
            "kind": message.kind,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if settings.sms_http_token:
        headers["Authorization"] = f"Bearer {settings.sms_http_token}"
    # The URL is the operator's, and config.py accepts only http:// and https:// for it,
    # so urlopen never sees file:// or a custom scheme.
    req = urllib.request.Request(  # noqa: S310
        settings.sms_http_url, data=payload, headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310  # nosec B310
        if resp.status >= 300:
            raise urllib.error.HTTPError(
                settings.sms_http_url, resp.status, "gateway refused", resp.headers, None
            )


def deliver(session: Session, settings: Settings, limit: int = 100) -> tuple[int, int]:
    """Deliver queued messages that are due; return (sent, failed). Commits each outcome."""
    now = utcnow()
    due = session.scalars(
        select(SmsMessage)
        .where(col(SmsMessage.status) == "queued")
        .where(or_(col(SmsMessage.sent_at).is_(None), col(SmsMessage.sent_at) <= now))
        .order_by(col(SmsMessage.id))
        .limit(limit)
    ).all()
    sent = failed = 0
    for message in due:
        message.attempts += 1
        try:
            if settings.sms_backend == "http":
                _post(settings, message)
            else:
                log.info("SMS from %s to %s: %s", settings.sms_number, message.phone, message.body)
        except (OSError, urllib.error.URLError) as exc:
            message.last_error = str(exc)[:500]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = "failed"
                log.error("SMS %s to %s failed for good: %s", message.id, message.phone, exc)
            else:
                # Backoff: the next try is due 2^attempts seconds later (sent_at holds it).
                message.sent_at = utcnow() + timedelta(seconds=2**message.attempts)
            failed += 1
        else:
            message.status = "sent"
            message.sent_at = utcnow()
            message.last_error = None
            sent += 1
        session.commit()
    return sent, failed


def outbox(session: Session, phone: str | None = None, limit: int = 50) -> list[SmsMessage]:
    """Return the newest messages, optionally for one phone."""
    query = select(SmsMessage).order_by(col(SmsMessage.id).desc()).limit(limit)
    if phone is not None:
        query = query.where(col(SmsMessage.phone) == phone)
    return list(session.scalars(query))
