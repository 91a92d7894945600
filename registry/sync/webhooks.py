"""Webhooks: an organization's changes, pushed to its URL in signed batches.

Durability comes from the feed itself rather than from a second outbox: a
hook keeps a cursor (the last ``seq`` its receiver acknowledged) and each
delivery is the next page of the organization's feed after that cursor. The
cursor moves only after a 2xx, in its own commit, so a worker killed at any
moment re-sends the same page on restart (at least once, never lost), and the
delivery id — derived from the hook and the page's first and last ``seq`` —
lets a receiver recognise the repeat (redelivery is harmless). The feed is
sequenced in commit order (see ``registry.sync.feed``), so a change committed
late is never behind a hook's cursor.

One delivery at a time per hook: a worker claims a hook with a short lease
(a conditional UPDATE, so two workers never post the same hook at once) and
the lease outlives the HTTP timeout; a worker that dies leaves the lease to
expire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.sync import egress, feed
from registry.sync.models import Webhook
from registry.timeutil import iso

MAX_HOOKS = 10
SIGNATURE_HEADER = "X-Anning-Signature"
DELIVERY_HEADER = "X-Anning-Delivery"
h = Webhook.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How the worker delivers: batch size, timeout, backoff, when to give up."""

    batch: int = 100
    timeout: float = 10.0
    backoff_base: float = 5.0  # seconds; doubled after each failure
    backoff_max: float = 3600.0
    disable_after: timedelta = timedelta(days=3)

    @property
    def lease(self) -> timedelta:
        """Return how long a claim lasts: longer than one delivery can take."""
        return timedelta(seconds=2 * self.timeout + 1)


def create(
    session: Session, org_id: int, url: str, *, allow_private: bool = False
) -> tuple[Webhook, str]:
    """Register a URL for the organization's changes; return the hook and its secret (shown once).

    A URL whose host is not a public address is refused (see ``registry.sync.egress``)
    unless ``allow_private`` (REGISTRY_WEBHOOK_ALLOW_PRIVATE); it is judged again at
    every delivery, after DNS resolution.
    """
    try:
        egress.check_url(url, allow_private=allow_private)
    except egress.TargetRefused as exc:
        raise ValidationFailed(str(exc), field="url") from exc
    hooks = session.scalar(select(func.count()).select_from(h).where(h.c.organization_id == org_id))
    if (hooks or 0) >= MAX_HOOKS:
        raise Conflict(f"an organization has at most {MAX_HOOKS} webhooks", field="url")
    secret = "whsec_" + secrets.token_hex(24)
    # A new hook starts at the feed's current end: it pushes what happens from now
    # on; the history is in GET /changes.
    hook = Webhook(organization_id=org_id, url=url, secret=secret, cursor=feed.last_seq(session))
    session.add(hook)
    session.flush()
    return hook, secret


def list_hooks(session: Session, org_id: int) -> list[Webhook]:
    """Return the organization's hooks, oldest first."""
    query = select(Webhook).where(h.c.organization_id == org_id).order_by(h.c.id)
    return list(session.scalars(query))


def delete_hook(session: Session, org_id: int, hook_id: int) -> None:
    """Remove one of the organization's hooks."""
    hook = session.get(Webhook, hook_id)
    if hook is None:
        raise NotFound("no such webhook")
    if hook.organization_id != org_id:
        raise Forbidden("that webhook belongs to another organization")
    session.delete(hook)
    session.flush()


def delete_by_url(session: Session, org_id: int, url: str) -> int:
    """Remove the organization's hooks for ``url``; return how many (0 is not an error: idempotent)."""
    hooks = [hook for hook in list_hooks(session, org_id) if hook.url == url]
    for hook in hooks:
        session.delete(hook)
    session.flush()
    return len(hooks)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Anning-Signature`` value: HMAC-SHA256 over ``"<t>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def claim_due(session: Session, policy: DeliveryPolicy, now: datetime) -> list[int]:
    """Lease the active hooks that are due; return their ids (commit is the caller's)."""
    due: list[int] = session.scalars(  # type: ignore[assignment]
        select(h.c.id).where(
            and_(
                h.c.status == "active",
                or_(h.c.next_attempt_at.is_(None), h.c.next_attempt_at <= now),
                or_(h.c.leased_until.is_(None), h.c.leased_until < now),
            )
        )
    ).all()
    claimed = []
    for hook_id in due:
        result = session.execute(
            update(h)
            .where(
                and_(
                    h.c.id == hook_id,
                    h.c.status == "active",
                    or_(h.c.leased_until.is_(None), h.c.leased_until < now),
                )
            )
            .values(leased_until=now + policy.lease)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(hook_id)
    return claimed


@dataclass(frozen=True, slots=True)
class Delivery:
    """One batch ready to post."""

    hook_id: int
    url: str
    secret: str
    delivery_id: str
    body: bytes
    last_seq: int


def next_delivery(session: Session, hook_id: int, policy: DeliveryPolicy) -> Delivery | None:
    """Return the next batch for a hook, or None when its receiver is up to date."""
    hook = session.get(Webhook, hook_id)
    if hook is None or hook.status != "active":
        return None
    page = feed.read(session, hook.organization_id, hook.cursor, policy.batch)
    if not page.changes:
        # Nothing of this organization's in the numbers scanned: skip past them
        # (they are final), so the next look starts further on.
        if page.next > hook.cursor:
            hook.cursor = page.next
            session.flush()
        return None
    first, last = page.changes[0]["seq"], page.changes[-1]["seq"]
    delivery_id = f"whd_{hook_id}_{first}_{last}"
    body = json.dumps(
        {"webhook_id": hook_id, "delivery_id": delivery_id, "changes": page.changes, "next": last},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return Delivery(hook_id, hook.url, hook.secret, delivery_id, body, last)


def post(delivery: Delivery, policy: DeliveryPolicy, *, allow_private: bool = False) -> str | None:
    """POST a batch; return None on a 2xx, else what went wrong.

    Through ``registry.sync.egress``: the host is resolved and every address
    judged, the connection goes to a validated address, no redirect is
    followed (a 3xx is a failure: a redirected POST's 200 is no
    acknowledgement), and every failure before an HTTP answer reads the same.
    """
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Anning-Webhooks/1",
        SIGNATURE_HEADER: signature(delivery.secret, timestamp, delivery.body),
        DELIVERY_HEADER: delivery.delivery_id,
    }
    return egress.post(
        delivery.url, delivery.body, headers, timeout=policy.timeout, allow_private=allow_private
    )


def record_result(
    session: Session,
    delivery: Delivery,
    error: str | None,
    policy: DeliveryPolicy,
    now: datetime,
) -> None:
    """Move the cursor after a 2xx; otherwise back off, and disable after a long failure."""
    hook = session.get(Webhook, delivery.hook_id)
    if hook is None:
        return  # deleted while we posted
    if error is None:
        hook.cursor = max(hook.cursor, delivery.last_seq)
        hook.failures = 0
        hook.failing_since = hook.next_attempt_at = hook.last_error = None
        hook.last_delivery_at = now
    else:
        hook.failures += 1
        hook.failing_since = hook.failing_since or now
        hook.last_error = error[:500]
        delay = min(policy.backoff_base * 2 ** (hook.failures - 1), policy.backoff_max)
        hook.next_attempt_at = now + timedelta(seconds=delay)
        if now - hook.failing_since >= policy.disable_after:
            hook.status = "disabled"
            hook.disabled_reason = (
                f"failing since {iso(hook.failing_since)} ({hook.failures} attempts); "
                f"last error: {error}"
            )[:500]
        hook.leased_until = None
    session.flush()


def release(session: Session, hook_id: int) -> None:
    """End a hook's lease (its receiver is up to date, or it failed)."""
    session.execute(update(h).where(h.c.id == hook_id).values(leased_until=None))


def public(hook: Webhook) -> dict[str, Any]:
    """Return a hook as the API shows it (never its secret)."""
    return {
        "id": hook.id,
        "url": hook.url,
        "status": hook.status,
        "disabled_reason": hook.disabled_reason,
        "cursor": hook.cursor,
        "failures": hook.failures,
        "last_error": hook.last_error,
        "next_attempt_at": iso(hook.next_attempt_at),
        "last_delivery_at": iso(hook.last_delivery_at),
        "created_at": iso(hook.created_at),
    }
