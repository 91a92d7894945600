"""The SMS gateway: an outbox in the database and two real delivery backends.

``send`` only writes the message to the outbox inside the caller's transaction,
so a message exists exactly when the change that caused it was committed.
``deliver`` hands queued messages to the configured backend: ``console``
writes them to the log (and ``registry sms outbox`` lists them), ``http``
POSTs JSON to the gateway; failures stay queued with their error and are
retried by ``registry sms deliver`` / the worker, never dropped.

Several deliverers run at once (every app worker after its own requests, the
``registry worker``, ``registry sms deliver``), so a message is *claimed*
before it is sent: one conditional ``UPDATE`` moves it from ``queued`` to
``sending`` with a lease (``sent_at`` holds the lease's end), and only the
deliverer whose update changed the row sends it. A deliverer that dies while
sending leaves the lease to run out; the message is then claimable again (a
gateway may see it twice after a crash, never because two deliverers raced).

A request delivers only the messages it queued itself (``queued_by``): a
holder's sign-in code goes out as the request ends, and nobody's request waits
on other people's messages, which the worker delivers.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow

log = logging.getLogger("registry.sms")
MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)  # longer than one gateway call (5 s timeout)
QUEUED = "registry.sms.queued"  # Session.info key: ids of the messages queued through it


def send(session: Session, phone: str, body: str, kind: str) -> SmsMessage:
    """Queue a text to ``phone`` in the current transaction."""
    message = SmsMessage(phone=phone, body=body[:1000], kind=kind)
    session.add(message)
    session.flush()
    session.info.setdefault(QUEUED, []).append(message.id)
    return message


def queued_by(session: Session) -> list[int]:
    """Return (and forget) the ids of the messages queued through ``session``."""
    ids: list[int] = session.info.pop(QUEUED, [])
    return ids


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


def _claim(session: Session, limit: int, ids: list[int] | None) -> list[SmsMessage]:
    """Claim up to ``limit`` due messages (only ``ids`` if given) and commit the claim."""
    now = utcnow()
    claimable = or_(
        and_(
            col(SmsMessage.status) == "queued",
            or_(col(SmsMessage.sent_at).is_(None), col(SmsMessage.sent_at) <= now),
        ),
        and_(col(SmsMessage.status) == "sending", col(SmsMessage.sent_at) <= now),
    )
    candidates = select(col(SmsMessage.id)).where(claimable).order_by(col(SmsMessage.id))
    if ids is not None:
        candidates = candidates.where(col(SmsMessage.id).in_(ids))
    candidates = candidates.limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # The condition is repeated on the updated row itself: a deliverer that lost the race
    # re-reads the row the winner committed (PostgreSQL re-checks it) and claims nothing.
    claimed = session.scalars(
        update(SmsMessage)
        .where(col(SmsMessage.id).in_(candidates.scalar_subquery()), claimable)
        .values(status="sending", sent_at=now + LEASE)
        .returning(col(SmsMessage.id))
    ).all()
    session.commit()
    if not claimed:
        return []
    return list(
        session.scalars(
            select(SmsMessage).where(col(SmsMessage.id).in_(claimed)).order_by(col(SmsMessage.id))
        )
    )


def deliver(
    session: Session, settings: Settings, limit: int = 100, ids: list[int] | None = None
) -> tuple[int, int]:
    """Claim and deliver due messages (only ``ids`` if given); return (sent, failed).

    Commits the claim, then each outcome.
    """
    sent = failed = 0
    for message in _claim(session, limit, ids):
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
                message.sent_at = None
                log.error("SMS %s to %s failed for good: %s", message.id, message.phone, exc)
            else:
                # Backoff: the next try is due 2^attempts seconds later (sent_at holds it).
                message.status = "queued"
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
