"""The SMS gateway: an outbox in the database and two real delivery backends.

``send`` only writes the message to the outbox inside the caller's transaction,
so a message exists exactly when the change that caused it was committed.
``deliver`` hands queued messages to the configured backend: ``console``
writes them to the log (and ``registry sms outbox`` lists them), ``http``
POSTs JSON to the gateway, ``kannel`` calls Kannel's smsbox ``sendsms`` with a
``dlr-url`` back to the registry (``record_delivery``); failures stay queued with their error and are
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
import urllib.parse
import urllib.request
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from registry.tokens import Signer

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


def _post(settings: Settings, message: SmsMessage) -> str | None:
    """POST ``message`` to the gateway; return the gateway's own id of it (``ref``), if it said."""
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
        # A gateway that relays to an SMS cloud may answer the cloud's id of the message
        # (e.g. {"ref": "<BizId>"}): the cloud's delivery reports name only that.
        try:
            answer = json.loads(resp.read(4096) or b"null")
        except ValueError:
            return None
        ref = answer.get("ref") if isinstance(answer, dict) else None
        return str(ref)[:64] if isinstance(ref, str | int) and ref != "" else None


def dlr_signer(settings: Settings) -> Signer:
    """Return the signer of the message ids in Kannel's dlr-url (only the registry makes them)."""
    return Signer(settings.secret_key, "sms-dlr")


# Kannel's dlr-mask bits (its user guide, "Delivery reports"): each report carries one.
KANNEL_DLR = {1: "delivered", 2: "undelivered", 4: "queued", 8: "accepted", 16: "rejected"}
DLR_MASK = sum(KANNEL_DLR)  # all five
FINAL = ("delivered", "undelivered", "rejected")  # no later "accepted" or "queued" undoes these
DELIVERY_STATES = (*FINAL, "accepted", "queued")


def _kannel(settings: Settings, message: SmsMessage) -> None:
    """Hand ``message`` to Kannel's smsbox (``sendsms``), asking for delivery reports."""
    if not (settings.sms_kannel_url and settings.sms_kannel_username):
        raise RuntimeError("REGISTRY_SMS_KANNEL_URL is not set")  # config refuses it earlier
    params = {
        "username": settings.sms_kannel_username,
        "password": settings.sms_kannel_password or "",
        "from": settings.sms_number,
        "to": message.phone,
        "text": message.body,
        "charset": "UTF-8",
        # GSM 7-bit cannot carry Chinese: anything beyond ASCII goes as UCS-2.
        "coding": "0" if message.body.isascii() else "2",
    }
    if settings.sms_dlr_base_url:
        token = dlr_signer(settings).dumps(message.id)
        # Kannel fills in %d (the report's type) and %A (the SMSC's answer) when it calls.
        params["dlr-mask"] = str(DLR_MASK)
        params["dlr-url"] = (
            f"{settings.sms_dlr_base_url}/api/v1/gateway/kannel/dlr?m={token}&type=%d&answer=%A"
        )
    url = f"{settings.sms_kannel_url}?{urllib.parse.urlencode(params)}"
    # config.py accepts only http:// and https:// for the URL (no file:// for urlopen).
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  # nosec B310
        if resp.status >= 300:  # smsbox answers 202 "0: Accepted for delivery" or "3: Queued"
            raise urllib.error.HTTPError(url, resp.status, "Kannel refused", resp.headers, None)


def record_delivery(
    session: Session,
    *,
    state: str,
    detail: str,
    at: datetime,
    message_id: int | None = None,
    provider_ref: str | None = None,
) -> bool:
    """Record a delivery report on the outbound message it names; return whether one matched.

    The message is named by the registry's id (Kannel's signed dlr-url, a cloud's
    pass-through field) or else by the gateway's own id. Reports arrive out of
    order (Kannel sent "delivered" before "accepted" in the tests): a final state
    is never replaced by an intermediate one, in the statement itself, so two
    reports handled at once cannot undo each other.
    """
    if message_id is not None:
        which = col(SmsMessage.id) == message_id
    elif provider_ref:
        which = col(SmsMessage.provider_ref) == provider_ref
    else:
        return False
    if state not in FINAL:
        which = and_(
            which, or_(col(SmsMessage.delivery).is_(None), col(SmsMessage.delivery).not_in(FINAL))
        )
    changed = session.execute(
        update(SmsMessage)
        .where(which)
        .values(delivery=state, delivery_detail=detail[:200] or None, delivery_at=at)
    ).rowcount  # type: ignore[attr-defined]
    if changed:
        return True
    # Not changed: unknown, or a late intermediate report about a message already final.
    exists = session.scalar(select(col(SmsMessage.id)).where(
        col(SmsMessage.id) == message_id if message_id is not None
        else col(SmsMessage.provider_ref) == provider_ref
    ))  # fmt: skip
    return exists is not None


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
                message.provider_ref = _post(settings, message)
            elif settings.sms_backend == "kannel":
                _kannel(settings, message)
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
