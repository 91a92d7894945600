"""File scrubs: receive a call list, show its progress, hand back its result and certificate.

A scrub is a batch check in chunks (SPEC §4 ``/check/batch``): the same
decision service (``checks.services.check_batch``), the same check log (every
number answered is a row a holder sees under "who checked my number"), the
same cold-number budget. What is new is only the file around it:

- **receiving** (``receive``): the body is streamed to an anonymous temporary
  file while it is hashed (SHA-256 of the bytes as sent) and measured, then
  read twice — once to count and validate every row, once to store it in
  chunks — so memory holds one chunk at most, and a file over the caps
  (``REGISTRY_SCRUB_MAX_ROWS``, default 1,000,000 numbers;
  ``REGISTRY_SCRUB_MAX_BYTES``) is refused (413) before anything is written.
  The job and all its chunks are written in one transaction: a job exists
  whole or not at all;
- **answering** is the worker's (registry/scrubs/worker.py);
- **the result** (``chunk_texts``) is the chunks' CSV text in order, after one
  header line: the same bytes every time, so their SHA-256 (``result_sha256``)
  computed when the job finished is the hash of every download;
- **the certificate** (``certificate``) is the job's outcome signed with
  itsdangerous (salt ``anning.scrub-certificate``), as receipts are: who
  scrubbed for which sender, the counts, both hashes, the data version (feed
  position) the answers rest on and until when they may be relied on.

Only the organization that uploaded a job sees it (``job_for``): an agent's
job is the agent's, not its principal's, though the check log names both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import Settings
from registry.database.statements import table_of
from registry.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    TooLarge,
    ValidationFailed,
)
from registry.orgs.models import Organization
from registry.orgs.services import Caller
from registry.scrubs.models import ACTIVE, ScrubChunk, ScrubJob
from registry.senders.models import Sender
from registry.senders.services import resolve_sender
from registry.timeutil import iso, utcnow
from registry.tokens import Signer

HEADER = "line,input,phone,decision,reason,next_allowed_at\r\n"
BLOCK = 1 << 16  # bytes read from the request at a time
_JOBS = table_of(ScrubJob)
_CHUNKS = table_of(ScrubChunk)


@dataclass(frozen=True, slots=True)
class Order:
    """What a scrub asks, as parsed from the upload's query: its sender still a code."""

    sender: str
    channel: str
    purpose: str = "marketing"
    category: str | None = None
    at: datetime | None = None
    column: str | None = None  # 1-based number or header name; None: the first column


@dataclass(frozen=True, slots=True)
class Spooled:
    """The uploaded body on local disk, with its size and hash."""

    file: IO[bytes]
    size: int
    sha256: str


def spool(stream: IO[bytes], max_bytes: int) -> Spooled:
    """Copy the request body to an anonymous temporary file, hashing it; 413 over ``max_bytes``."""
    out = tempfile.TemporaryFile()  # noqa: SIM115  # closed by the caller (receive)
    digest = hashlib.sha256()
    size = 0
    try:
        while block := stream.read(BLOCK):
            size += len(block)
            if size > max_bytes:
                raise TooLarge(f"a scrub file holds at most {max_bytes} bytes", field="file")
            digest.update(block)
            out.write(block)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return Spooled(out, size, digest.hexdigest())


def _column(order: Order, first: list[str]) -> tuple[int, bool]:
    """Return the 0-based column of the numbers, and whether the first row is a header."""
    spec = (order.column or "").strip()
    if spec.isdigit():
        index = int(spec) - 1
        if index < 0:
            raise ValidationFailed("column: 1 is the first column", field="column")
    elif spec:
        names = [cell.strip().casefold() for cell in first]
        if spec.casefold() not in names:
            raise ValidationFailed(
                f"column {spec!r} is not in the file's first line", field="column"
            )
        return names.index(spec.casefold()), True
    else:
        index = 0
    cell = first[index] if index < len(first) else ""
    return index, not any(ch.isdigit() for ch in cell)


def _rows(spooled: Spooled, order: Order) -> Iterator[tuple[int, str]]:
    """Yield (line number, value) for every number of the file; 422 for a file that is not CSV."""
    spooled.file.seek(0)
    text = io.TextIOWrapper(spooled.file, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    index: int | None = None
    try:
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if index is None:
                index, header = _column(order, row)
                if header:
                    continue
            value = row[index] if index < len(row) else ""
            if "\x00" in value:
                raise ValidationFailed(
                    f"line {reader.line_num} contains a NUL character", field="file"
                )
            yield reader.line_num, value
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            "the file is not UTF-8 text; save it as CSV UTF-8 and upload it again", field="file"
        ) from exc
    except csv.Error as exc:
        raise ValidationFailed(
            f"the file is not CSV (line {reader.line_num}): {exc}", field="file"
        ) from exc
    finally:
        text.detach()  # the temporary file stays open for the next pass


def count_rows(spooled: Spooled, order: Order, max_rows: int) -> int:
    """Count the file's numbers, validating every row; 413 over ``max_rows``, 422 for none."""
    rows = 0
    for _ in _rows(spooled, order):
        rows += 1
        if rows > max_rows:
            raise TooLarge(
                f"a scrub file holds at most {max_rows} numbers (one a line, a header "
                "line aside); split the list and upload each part",
                field="file",
            )
    if rows == 0:
        raise ValidationFailed("the file holds no numbers", field="file")
    return rows


def _lock_organization(session: Session, org_id: int) -> None:
    """Serialize the organization's uploads, so the cap on active jobs is exact."""
    query = select(col(Organization.id)).where(col(Organization.id) == org_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    # On SQLite the write transaction itself (BEGIN IMMEDIATE) serializes every writer.
    session.execute(query)


def receive(
    session: Session,
    reader: Session,
    settings: Settings,
    who: Caller,
    order: Order,
    body: IO[bytes],
) -> ScrubJob:
    """Store an uploaded call list as a queued job (flushed, not committed); refuse it whole.

    The sender is resolved first (a wrong sender costs no upload), the body is
    spooled and counted before the database is touched for writing, and the
    job with all its chunks is one transaction of ``session``.
    """
    now = utcnow()
    resolve_sender(reader, who, order.sender, "check", now)
    spooled = spool(body, settings.scrub_max_bytes)
    with spooled.file:
        rows = count_rows(spooled, order, settings.scrub_max_rows)
        _lock_organization(session, who.org_id)
        active = session.scalar(
            select(func.count())
            .select_from(_JOBS)
            .where(_JOBS.c.organization_id == who.org_id, _JOBS.c.status.in_(ACTIVE))
        )
        if (active or 0) >= settings.scrub_max_jobs:
            raise RateLimited(
                f"this organization has {active} scrub jobs queued or running, the most it may "
                f"have at once (REGISTRY_SCRUB_MAX_JOBS={settings.scrub_max_jobs}); "
                "upload again when one is done",
                retry_after=60,
            )
        sender = resolve_sender(session, who, order.sender, "check", now)
        size = settings.max_batch
        job = ScrubJob(
            organization_id=who.org_id,
            key_prefix=who.key_prefix,
            sender_id=sender.id,
            sender_code=sender.code,
            channel=order.channel,
            purpose=order.purpose,
            category=order.category,
            at=order.at,
            rows=rows,
            chunks=-(-rows // size),
            input_bytes=spooled.size,
            input_sha256=spooled.sha256,
            created_at=now,
        )
        session.add(job)
        session.flush()
        chunk: list[tuple[int, str]] = []
        n = 0
        for line in _rows(spooled, order):
            chunk.append(line)
            if len(chunk) == size:
                _store_chunk(session, job, n, chunk)
                chunk, n = [], n + 1
        if chunk:
            _store_chunk(session, job, n, chunk)
    return job


def _store_chunk(session: Session, job: ScrubJob, n: int, lines: list[tuple[int, str]]) -> None:
    session.execute(
        insert(_CHUNKS),
        {"job_id": job.id, "n": n, "lines": json.dumps(lines, ensure_ascii=False)},
    )


def job_for(session: Session, who: Caller, job_id: int) -> ScrubJob:
    """Return the job if the caller's organization uploaded it; 404 if none, 403 if another's."""
    job = session.get(ScrubJob, job_id)
    if job is None:
        raise NotFound(f"no scrub job {job_id}")
    if job.organization_id != who.org_id:
        raise Forbidden(f"scrub job {job_id} belongs to another organization")
    return job


def ensure_done(job: ScrubJob) -> None:
    """Raise Conflict (409) unless the job is done: a failed or unfinished job has no result."""
    if job.status == "failed":
        raise Conflict(f"scrub job {job.id} failed: {job.error}; it has no result")
    if job.status != "done":
        raise Conflict(
            f"scrub job {job.id} is {job.status} ({job.processed} of {job.rows} numbers); "
            "poll it until its status is done"
        )


def describe(job: ScrubJob) -> dict[str, Any]:
    """Return the job as the API shows it: progress, counts, hashes, links."""
    base = f"/api/v1/scrubs/{job.id}"
    out: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "sender": job.sender_code,
        "channel": job.channel,
        "purpose": job.purpose,
        "category": job.category,
        "at": iso(job.at),
        "rows": job.rows,
        "processed": job.processed,
        "progress": round(job.processed / job.rows, 4) if job.rows else 1.0,
        "summary": {"allow": job.allowed, "deny": job.denied, "invalid": job.invalid},
        "input_sha256": job.input_sha256,
        "result_sha256": job.result_sha256,
        "data_version": job.first_seq,
        "data_version_last": job.last_seq,
        "valid_until": iso(job.valid_until),
        "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
        "error": job.error,
        "links": {"self": base},
    }
    if job.status == "waiting":
        out["retry_at"] = iso(job.lease_until)
    if job.status == "done":
        out["links"] |= {"result": f"{base}/result.csv", "certificate": f"{base}/certificate"}
    return out


def chunk_texts(session: Session, job_id: int, chunks: int) -> Iterator[str]:
    """Yield the header and every answered chunk's text in order, one chunk read at a time."""
    yield HEADER
    for n in range(chunks):
        text = session.scalar(
            select(_CHUNKS.c.result).where(_CHUNKS.c.job_id == job_id, _CHUNKS.c.n == n)
        )
        if text is None:  # a job is done only when every chunk is answered (worker.finish)
            raise Conflict(f"scrub job {job_id} has no result for chunk {n}")
        yield text


_SIGNERS: dict[str, Signer] = {}


def _signer(settings: Settings) -> Signer:
    signer = _SIGNERS.get(settings.secret_key)
    if signer is None:
        signer = _SIGNERS[settings.secret_key] = Signer(settings.secret_key, "scrub-certificate")
    return signer


def certificate(session: Session, settings: Settings, job: ScrubJob) -> dict[str, Any]:
    """Return the job's signed certificate and what it says (409 until the job is done)."""
    ensure_done(job)
    org = session.get(Organization, job.organization_id)
    owner = session.scalar(
        select(col(Organization.slug))
        .join(Sender, col(Sender.organization_id) == Organization.id)
        .where(col(Sender.id) == job.sender_id)
    )
    claims: dict[str, Any] = {
        "job_id": job.id,
        "organization": org.slug if org is not None else None,
        "sender": job.sender_code,
        "on_behalf_of": owner if org is not None and owner != org.slug else None,
        "channel": job.channel,
        "purpose": job.purpose,
        "category": job.category,
        "at": iso(job.at),
        "rows": job.rows,
        "summary": {"allow": job.allowed, "deny": job.denied, "invalid": job.invalid},
        "input_sha256": job.input_sha256,
        "result_sha256": job.result_sha256,
        "data_version": job.first_seq,
        "data_version_last": job.last_seq,
        "checked_from": iso(job.first_checked_at),
        "checked_until": iso(job.last_checked_at),
        "valid_until": iso(job.valid_until),
    }
    return {"certificate": _signer(settings).dumps(claims), **claims}


def read_certificate(settings: Settings, token: str) -> dict[str, Any]:
    """Return what a genuine certificate says; raise InvalidToken (422) for a forged one."""
    claims = _signer(settings).loads(token)
    if not isinstance(claims, dict) or "job_id" not in claims:
        raise NotFound("no such certificate")
    return {"certificate": token, **claims}
