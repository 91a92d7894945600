"""The background worker: number the feed, push webhooks, send texts, expire consents,
replay the check spool.

Each job commits its own work (a job is a commit boundary, STYLE.md habit 2)
and a failing job is logged and retried on the next tick, never fatal to the
loop: one receiver that hangs must not stop the SMS gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from registry.checks import facts, partitions, spool
from registry.config import Settings
from registry.consent import refusals
from registry.consent import services as consents
from registry.events import sealing
from registry.sanctions import trigger
from registry.sms import services as sms
from registry.sync import webhooks
from registry.timeutil import utcnow

log = logging.getLogger("registry.worker")
SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass
class Tick:
    """What one pass of the worker did."""

    sequenced: int = 0
    delivered: int = 0
    failed: int = 0
    sms_sent: int = 0
    expired: int = 0
    refusals_lifted: int = 0
    refusals_reminded: int = 0
    sanctioned: int = 0
    partitions: int = 0  # check-log partitions made or dropped (checks/partitions.py)
    fact_changes_pruned: int = 0  # rows of fact_change older than any standby's window
    replayed: int = 0  # spooled check-log rows moved into check_log (checks/spool.py)
    errors: list[str] = field(default_factory=list)


def fact_change_keep(settings: Settings) -> float:
    """Return how long (s) ``fact_change`` rows are kept: an hour, or twice the longest standby window.

    A check from a standby probes changes back to its measured staleness
    (at most ``REGISTRY_REPLICA_MAX_LAG``) plus ``REGISTRY_REPLICA_COMMIT_ALLOWANCE``.
    """
    return max(3600.0, 2 * (settings.replica_max_lag + settings.replica_commit_allowance))


def sequence_all(session_factory: SessionFactory) -> int:
    """Number and chain every committed change that is not sealed yet."""
    total = 0
    while True:
        with session_factory() as session:
            n = sealing.seal(session, wait=True)
            session.commit()
        total += n
        if n < sealing.BATCH:
            return total


def deliver_webhooks(
    session_factory: SessionFactory,
    policy: webhooks.DeliveryPolicy,
    max_batches: int = 50,
    *,
    allow_private: bool = False,
) -> tuple[int, int]:
    """Push due hooks' pending batches; return (batches delivered, failures).

    ``allow_private`` (REGISTRY_WEBHOOK_ALLOW_PRIVATE) lets deliveries reach
    private addresses; without it every delivery re-judges the resolved address.
    """
    delivered = failed = 0
    with session_factory() as session:
        claimed = webhooks.claim_due(session, policy, utcnow())
        session.commit()
    for hook_id in claimed:
        for _ in range(max_batches):
            with session_factory() as session:
                delivery = webhooks.next_delivery(session, hook_id, policy)
                if delivery is None:
                    webhooks.release(session, hook_id)
                session.commit()  # no transaction stays open while we wait on a receiver
            if delivery is None:
                break
            error = webhooks.post(delivery, policy, allow_private=allow_private)
            with session_factory() as session:
                webhooks.record_result(session, delivery, error, policy, utcnow())
                session.commit()
            if error is not None:
                log.warning("webhook %s: %s", hook_id, error)
                failed += 1
                break
            delivered += 1
        else:
            with session_factory() as session:
                webhooks.release(session, hook_id)  # more to send: next tick, fairly
                session.commit()
    return delivered, failed


def tick(
    session_factory: SessionFactory,
    settings: Settings,
    policy: webhooks.DeliveryPolicy,
    *,
    expire: bool = True,
    console: bool = False,
) -> Tick:
    """Run every job once (the console's trigger and rollups only when ``console``)."""
    out = Tick()
    try:
        out.sequenced = sequence_all(session_factory)
    except Exception as exc:
        log.exception("sequencing failed")
        out.errors.append(f"sequence: {exc}")
    try:
        out.delivered, out.failed = deliver_webhooks(
            session_factory, policy, allow_private=settings.webhook_allow_private
        )
    except Exception as exc:
        log.exception("webhook delivery failed")
        out.errors.append(f"webhooks: {exc}")
    local = spool.of(settings)
    if local is not None:
        try:
            with session_factory() as session:
                engine = session.connection().engine  # claim and replay commit on their own
                session.rollback()
            with engine.connect() as conn:
                local.claim(conn)
            out.replayed = local.replay(engine)
        except Exception as exc:
            log.exception("check spool replay failed")
            out.errors.append(f"check spool: {exc}")
    try:
        with session_factory() as session:
            out.sms_sent, _ = sms.deliver(session, settings, 1000)
    except Exception as exc:
        log.exception("SMS delivery failed")
        out.errors.append(f"sms: {exc}")
    if expire:
        try:
            with session_factory() as session:
                out.expired = consents.expire_due(session)
                session.commit()
        except Exception as exc:
            log.exception("consent expiry failed")
            out.errors.append(f"expiry: {exc}")
        try:
            with session_factory() as session:
                ended = refusals.run(session, settings)
                session.commit()
            out.refusals_lifted, out.refusals_reminded = ended.lifted, ended.reminded
        except Exception as exc:
            log.exception("ending timed refusals failed")
            out.errors.append(f"refusals: {exc}")
    if console:
        try:
            with session_factory() as session:
                kept = partitions.maintain(
                    session.connection(), utcnow(), settings.check_log_retention_months
                )
                session.commit()
            out.partitions = len(kept.created) + len(kept.dropped)
        except Exception as exc:
            log.exception("check log partitions failed")
            out.errors.append(f"check log: {exc}")
        try:
            with session_factory() as session:
                out.fact_changes_pruned = facts.prune_fact_changes(
                    session, utcnow() - timedelta(seconds=fact_change_keep(settings))
                )
                session.commit()
        except Exception as exc:
            log.exception("pruning fact changes failed")
            out.errors.append(f"fact changes: {exc}")
        try:
            out.sanctioned = trigger.run_jobs(session_factory, settings)
        except Exception as exc:
            log.exception("sanction trigger or statistics refresh failed")
            out.errors.append(f"console: {exc}")
    return out


def run(
    session_factory: SessionFactory,
    settings: Settings,
    policy: webhooks.DeliveryPolicy,
    *,
    interval: float = 0.5,
    expire_every: float = 60.0,
    console_every: float = 900.0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Loop until ``stop()``: every job each tick, consent expiry every ``expire_every`` s,
    the sanction trigger and statistics rollups every ``console_every`` s."""
    last_expiry = last_console = 0.0
    while not stop():
        now = time.monotonic()
        expire = now - last_expiry >= expire_every
        if expire:
            last_expiry = now
        console = now - last_console >= console_every
        if console:
            last_console = now
        done = tick(session_factory, settings, policy, expire=expire, console=console)
        if done.sequenced or done.delivered or done.failed:
            log.info(
                "sequenced %d, delivered %d batches, %d failed, %d texts",
                done.sequenced, done.delivered, done.failed, done.sms_sent,
            )  # fmt: skip
        if not (done.sequenced or done.delivered):
            time.sleep(interval)
