"""The scrub worker: claim a job with a lease, answer it one chunk per transaction, finish it.

Who runs a job is ``registry scrub-worker``, a process of its own (as many as
wanted, on any machine that reaches the database), never a thread of the app
server: with several gunicorn workers, and several servers, a thread would
need the same claim anyway, and would die with every worker restart.

**The claim** is the SMS outbox's (registry/sms/services.py): one conditional
``UPDATE`` moves a claimable job to ``running`` with a lease (``lease_until``)
and the worker's name; only the worker whose update changed the row runs it.
A job is claimable when it is queued, waiting and its time has come, or
running with a lease that ran out — its worker died.

**A chunk is one transaction.** It begins by extending the lease with an
``UPDATE ... WHERE worker = me``: when another worker has taken the job over,
the update changes nothing and this worker stops, having written nothing. Then
the chunk's numbers are checked as ``checks.services.check_batch`` checks them
(registry/scrubs/answers.py: facts, cold-number budget, decisions, the check
log's batch row and a log row per distinct number), the chunk's result text is stored and the job's counters
advance, and everything commits together. A worker killed at any point leaves
either the whole chunk or none of it; the next worker to claim the job goes on
from the first chunk not answered. A job taken over ``MAX_CLAIMS`` times (a
file that kills every worker) fails, saying so.

**One snapshot per chunk.** On PostgreSQL the chunk's transaction is
``REPEATABLE READ``: the facts of all its numbers (several queries for 10,000
numbers) and the data version it names are read from one snapshot; on SQLite
the write transaction (``BEGIN IMMEDIATE``) is one snapshot. Chunks are
answered at different times: a holder's change made while a job runs is in
every chunk answered after it was committed, and the job's data version is a
range (``data_version`` of the first chunk, ``data_version_last`` of the last).

**Who may.** Every chunk resolves the sender again for the uploading
organization with scope ``check``, and requires the uploading key to be live:
a delegation revoked, a key revoked or a sender gone fail the job (with what
was answered so far logged, as it was answered, and no result file). A cold
budget spent (``REGISTRY_RATELIMIT_COLD_CHECK``) puts the job to ``waiting``
until the window reopens; nothing of the refused chunk is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from registry import csvcells
from registry.checks import services as checks
from registry.config import Settings
from registry.database.statements import table_of
from registry.errors import RateLimited, RegistryError, Unauthorized
from registry.orgs.models import ApiKey, Organization
from registry.orgs.services import Caller
from registry.scrubs import answers
from registry.scrubs.models import ScrubChunk, ScrubJob
from registry.scrubs.services import chunk_texts
from registry.senders.services import resolve_sender
from registry.timeutil import iso, utcnow

log = logging.getLogger("registry.scrubs")
LEASE = timedelta(seconds=60)  # far longer than one chunk takes
MAX_CLAIMS = 10  # take-overs of a job whose worker died, before it fails
_JOBS = table_of(ScrubJob)
_CHUNKS = table_of(ScrubChunk)

SessionFactory = Callable[[], AbstractContextManager[Session]]
# Builds the cold-number budget for (acting organization's slug, sender code, channel).
BudgetFactory = Callable[[str, str, str], checks.ColdBudget]


def worker_name() -> str:
    """Return a name for this worker process, unique across machines and restarts."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim(session: Session, worker: str, lease: timedelta = LEASE) -> int | None:
    """Claim the oldest claimable job for ``worker``; commit; return its id (None: nothing to do)."""
    now = utcnow()
    t = _JOBS
    claimable = or_(
        t.c.status.in_(("queued", "waiting"))
        & or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
        (t.c.status == "running") & (t.c.lease_until <= now),
    )
    candidates = select(t.c.id).where(claimable).order_by(t.c.id).limit(1)
    if _postgres(session):
        candidates = candidates.with_for_update(skip_locked=True)
    # The condition is repeated on the row itself: of two workers racing for it,
    # the loser re-reads the winner's committed row and claims nothing.
    row = session.execute(
        update(t)
        .where(t.c.id.in_(candidates.scalar_subquery()), claimable)
        .values(
            status="running",
            worker=worker,
            lease_until=now + lease,
            # A running job claimed again was abandoned by a worker that died.
            claims=t.c.claims + case((t.c.status == "running", 1), else_=0),
        )
        .returning(t.c.id, t.c.claims)
    ).first()
    session.commit()
    if row is None:
        return None
    job_id, claims = int(row[0]), int(row[1])
    if claims > MAX_CLAIMS:
        _release(
            session, job_id, worker, status="failed", finished_at=now,
            error=f"abandoned by {MAX_CLAIMS} workers that stopped while answering it",
        )  # fmt: skip
        log.error("scrub job %s failed: abandoned %d times", job_id, MAX_CLAIMS)
        return None
    log.info("scrub job %s claimed by %s", job_id, worker)
    return job_id


def _release(session: Session, job_id: int, worker: str, **values: Any) -> None:
    """Give the job up with ``values`` (failed, waiting), if this worker still holds it; commit."""
    session.execute(
        update(_JOBS)
        .where(_JOBS.c.id == job_id, _JOBS.c.worker == worker)
        .values(worker=None, **values)
    )
    session.commit()


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did: ``chunk`` (more to do), ``done``, ``lost``, ``waiting``, ``failed``."""

    outcome: str
    numbers: int = 0


def _acting(session: Session, job: Any) -> Caller:
    """Return the uploading organization as a caller, if the key it uploaded with is still live."""
    org, key = table_of(Organization), table_of(ApiKey)
    row = session.execute(
        select(org.c.id, org.c.slug, org.c.name, org.c.role, org.c.suspended_until)
        .join(key, key.c.organization_id == org.c.id)
        .where(
            key.c.prefix == job.key_prefix,
            key.c.revoked_at.is_(None),
            org.c.id == job.organization_id,
        )
    ).first()
    if row is None:
        raise Unauthorized("the API key that uploaded this scrub was revoked")
    return Caller(row[0], row[1], row[2], row[3], row[4], job.key_prefix)


def _result_text(lines: list[list[Any]], result: answers.Answered) -> str:
    """Return a chunk's lines of the result file (input echoed defused; registry/csvcells.py)."""
    out = io.StringIO()
    writer = csv.writer(out)
    text_cell, phone_cell = csvcells.text_cell, csvcells.phone_cell
    for (line, raw), phone, dec in zip(lines, result.phones, result.decisions, strict=True):
        if dec is None:
            writer.writerow([line, text_cell(raw), "", "invalid", "invalid_phone", ""])
            continue
        writer.writerow([
            line,
            text_cell(raw),
            phone_cell(phone or ""),
            dec.decision,
            dec.reason,
            iso(dec.next_allowed_at) if dec.next_allowed_at is not None else "",
        ])  # fmt: skip
    return out.getvalue()


def step(
    session: Session,
    settings: Settings,
    job_id: int,
    worker: str,
    budget: BudgetFactory,
    lease: timedelta = LEASE,
) -> Step:
    """Answer the job's next chunk (or finish it) in one transaction; commit or write nothing."""
    now = utcnow()
    if _postgres(session):
        # Before the transaction's first statement: the whole chunk reads one snapshot.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        job = session.execute(
            update(_JOBS)
            .where(_JOBS.c.id == job_id, _JOBS.c.worker == worker, _JOBS.c.status == "running")
            .values(lease_until=now + lease)
            .returning(*_JOBS.c)
        ).first()
    except OperationalError as exc:  # another worker's claim committed after our snapshot
        session.rollback()
        if getattr(exc.orig, "sqlstate", None) == "40001":
            return Step("lost")
        raise
    if job is None:  # taken over by another worker (our lease ran out) or given up
        session.rollback()
        return Step("lost")
    if job.chunks_done >= job.chunks:
        return _finish(session, settings, job, worker, now)
    try:
        who = _acting(session, job)
        sender = resolve_sender(session, who, job.sender_code, "check", now)
        req = checks.CheckRequest(
            sender, job.channel, job.purpose, job.category or sender.category, job.at or now
        )
        raw = session.scalar(
            select(_CHUNKS.c.lines).where(
                _CHUNKS.c.job_id == job_id, _CHUNKS.c.n == job.chunks_done
            )
        )
        lines: list[list[Any]] = json.loads(raw or "[]")
        result = answers.answer(
            session, settings, req, [value for _, value in lines],
            budget(who.slug, job.sender_code, job.channel),
        )  # fmt: skip
    except RateLimited as exc:
        session.rollback()
        _release(
            session, job_id, worker, status="waiting",
            lease_until=utcnow() + timedelta(seconds=exc.retry_after), error=exc.message,
        )  # fmt: skip
        log.warning("scrub job %s waits %d s: %s", job_id, exc.retry_after, exc.message)
        return Step("waiting")
    except RegistryError as exc:
        session.rollback()
        _release(
            session, job_id, worker, status="failed", finished_at=utcnow(),
            lease_until=None, error=f"{exc.code}: {exc.message}"[:500],
        )  # fmt: skip
        log.warning("scrub job %s failed: %s", job_id, exc.message)
        return Step("failed")
    session.execute(
        update(_CHUNKS)
        .where(_CHUNKS.c.job_id == job_id, _CHUNKS.c.n == job.chunks_done)
        .values(result=_result_text(lines, result), batch_id=result.batch_id)
    )
    checked = result.checked_at or now
    session.execute(
        update(_JOBS)
        .where(_JOBS.c.id == job_id)
        .values(
            chunks_done=_JOBS.c.chunks_done + 1,
            processed=_JOBS.c.processed + len(lines),
            allowed=_JOBS.c.allowed + result.allowed,
            denied=_JOBS.c.denied + result.denied,
            invalid=_JOBS.c.invalid + result.invalid,
            first_seq=func.coalesce(_JOBS.c.first_seq, result.data_version),
            last_seq=result.data_version,
            first_checked_at=func.coalesce(_JOBS.c.first_checked_at, checked),
            last_checked_at=checked,
            error=None,
        )
    )
    session.commit()
    return Step("chunk", len(lines))


def _finish(session: Session, settings: Settings, job: Any, worker: str, now: datetime) -> Step:
    """Hash the result file, mark the job done, drop its input lines; commit."""
    digest = hashlib.sha256()
    for text in chunk_texts(session, job.id, job.chunks):
        digest.update(text.encode())
    first: datetime = job.first_checked_at or now
    session.execute(
        update(_JOBS)
        .where(_JOBS.c.id == job.id)
        .values(
            status="done",
            result_sha256=digest.hexdigest(),
            finished_at=now,
            valid_until=checks.valid_until_of(settings, first),
            worker=None,
            lease_until=None,
        )
    )
    # The answers carry the input they answered; the list itself is no longer needed.
    session.execute(update(_CHUNKS).where(_CHUNKS.c.job_id == job.id).values(lines="[]"))
    session.commit()
    log.info("scrub job %s done: %d numbers", job.id, job.rows)
    return Step("done")


def run_job(
    sessions: SessionFactory,
    settings: Settings,
    job_id: int,
    worker: str,
    budget: BudgetFactory,
    lease: timedelta = LEASE,
    stop: Callable[[], bool] = lambda: False,
) -> Step:
    """Answer a claimed job chunk after chunk until it is done, lost, waiting or failed."""
    numbers = 0
    while True:
        with sessions() as session:
            done = step(session, settings, job_id, worker, budget, lease)
        numbers += done.numbers
        if done.outcome != "chunk":
            return Step(done.outcome, numbers)
        if stop():
            with sessions() as session:  # hand the job to the next worker at once
                _release(session, job_id, worker, status="queued", lease_until=None)
            return Step("lost", numbers)


def work(
    sessions: SessionFactory,
    settings: Settings,
    worker: str,
    budget: BudgetFactory,
    lease: timedelta = LEASE,
    stop: Callable[[], bool] = lambda: False,
    once: bool = False,
    idle: Callable[[], None] = lambda: None,
) -> int:
    """Claim and run jobs until ``stop()`` (or, ``once``, until none is left); return jobs run."""
    jobs = 0
    while not stop():
        with sessions() as session:
            job_id = claim(session, worker, lease)
        if job_id is None:
            if once:
                return jobs
            idle()
            continue
        try:
            run_job(sessions, settings, job_id, worker, budget, lease, stop)
        except Exception:  # the lease runs out and another worker (or this one) retries it
            log.exception("scrub job %s: the worker stopped on an error", job_id)
            if once:
                raise
        jobs += 1
    return jobs
