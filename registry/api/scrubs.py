"""``/scrubs``: call lists of up to a million numbers, checked in the background.

Upload the CSV as the request body (``Content-Type: text/csv``) with the
question in the query; poll the job; download the result and its signed
certificate. ``registry scrub-worker`` answers the jobs (registry/scrubs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from flask import Response, jsonify, request
from pydantic import BaseModel, Field

from registry.api import bp, caller, read_limit
from registry.api.openapi import route
from registry.api.schemas import Category, Channel, Purpose, SenderCode, Strict, Time
from registry.config import current_settings
from registry.db import get_reader, get_session
from registry.errors import RegistryError
from registry.extensions import db, limiter
from registry.scrubs import services


class ScrubIn(Strict):
    """The question a scrub asks of every number of the file (the upload's query)."""

    sender: SenderCode
    channel: Channel
    purpose: Purpose = "marketing"
    category: Category | None = None
    at: Time | None = None
    column: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ScrubSummary(BaseModel):
    """Counts of the numbers answered so far."""

    allow: int
    deny: int
    invalid: int


class ScrubOut(BaseModel):
    """A scrub job: its question, progress, counts and, once done, hashes and links."""

    id: int
    status: Annotated[str, Field(pattern="^(queued|running|waiting|done|failed)$")]
    sender: str
    channel: Channel
    purpose: Purpose
    category: str | None = None
    at: str | None = None
    rows: int
    processed: int
    progress: float
    summary: ScrubSummary
    input_sha256: str
    result_sha256: str | None = None
    data_version: int | None = Field(
        default=None, description="Feed position of the first chunk's answers (every change "
        "up to it was in every answer)."
    )  # fmt: skip
    data_version_last: int | None = Field(
        default=None, description="Feed position of the last chunk's answers."
    )
    valid_until: str | None = Field(
        default=None, description="Until when the results may be relied on "
        "(REGISTRY_RESULT_VALIDITY, from the first chunk's time); set when done."
    )  # fmt: skip
    created_at: str
    finished_at: str | None = None
    retry_at: str | None = None
    error: str | None = None
    links: dict[str, str]


class Certificate(BaseModel):
    """A finished job's outcome, signed (``certificate``), and what it says."""

    certificate: str
    job_id: int
    organization: str | None = None
    sender: str
    on_behalf_of: str | None = None
    channel: str
    purpose: str
    category: str | None = None
    at: str | None = None
    rows: int
    summary: ScrubSummary
    input_sha256: str
    result_sha256: str | None = None
    data_version: int | None = None
    data_version_last: int | None = None
    checked_from: str | None = None
    checked_until: str | None = None
    valid_until: str | None = None


CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/octet-stream", ""}
QUERY = {
    "sender": "string", "channel": "string", "purpose": "string", "category": "string",
    "at": "string", "column": "string",
}  # fmt: skip


def _check_limit() -> str:
    return current_settings().ratelimit_check


def _order() -> services.Order:
    """Parse the upload's query as ``ScrubIn`` (422 like any body that does not validate)."""
    data = ScrubIn.model_validate_json(json.dumps(request.args.to_dict()))
    return services.Order(
        data.sender, data.channel, data.purpose, data.category, data.at, data.column
    )


@route(
    bp, "/scrubs", "POST", summary="Upload a call list (CSV) to scrub", tag="scrubs",
    response=ScrubOut, status=202, query=QUERY, required=("sender", "channel"),
    raw_body="text/csv",
)  # fmt: skip
@limiter.limit(_check_limit)
def create_scrub() -> Any:
    """Queue a scrub of the uploaded CSV (the numbers in its first or ``column`` column)."""
    order = _order()
    media = (request.mimetype or "").lower()
    if media not in CSV_TYPES:
        raise RegistryError(
            f"send the file itself as the body with Content-Type: text/csv, not {media}"
        )
    cfg = current_settings()
    request.max_content_length = cfg.scrub_max_bytes
    session = get_session()
    job = services.receive(session, get_reader(), cfg, caller(), order, request.stream)
    session.commit()
    return jsonify(services.describe(job)), 202, {"Location": f"/api/v1/scrubs/{job.id}"}


@route(bp, "/scrubs/<id:job_id>", "GET", summary="Poll a scrub job", tag="scrubs",
       response=ScrubOut)  # fmt: skip
@limiter.limit(read_limit)
def get_scrub(job_id: int) -> Any:
    """Return the job's status and progress (only to the organization that uploaded it)."""
    return jsonify(services.describe(services.job_for(get_reader(), caller(), job_id)))


@route(bp, "/scrubs/<id:job_id>/result.csv", "GET", summary="Download a scrub's result",
       tag="scrubs", produces="text/csv", responses={409: "The job is not done (or failed)"})  # fmt: skip
@limiter.limit(read_limit)
def scrub_result(job_id: int) -> Any:
    """Stream the result CSV: line, input, phone, decision, reason, next_allowed_at."""
    job = services.job_for(get_reader(), caller(), job_id)
    services.ensure_done(job)  # 409 before the answer starts
    # The body is read after the view returned and the request's sessions were
    # closed, so it reads through a session of its own (lock-free on SQLite),
    # closed when the download ends or is cut off.
    body = _download(db.reader or db.sessionmaker, job.id or 0, job.chunks)
    headers = {
        "Content-Disposition": f'attachment; filename="scrub-{job.id}.csv"',
        "X-Content-SHA256": job.result_sha256 or "",
    }
    return Response(body, mimetype="text/csv", headers=headers)


def _download(factory: Any, job_id: int, chunks: int) -> Iterator[bytes]:
    session = factory()
    try:
        for text in services.chunk_texts(session, job_id, chunks):
            yield text.encode()
    finally:
        session.close()


@route(bp, "/scrubs/<id:job_id>/certificate", "GET", summary="A scrub's signed certificate",
       tag="scrubs", response=Certificate, responses={409: "The job is not done (or failed)"})  # fmt: skip
@limiter.limit(read_limit)
def scrub_certificate(job_id: int) -> Any:
    """Return the signed certificate of a finished job."""
    reader = get_reader()
    job = services.job_for(reader, caller(), job_id)
    return jsonify(services.certificate(reader, current_settings(), job))


@route(bp, "/certificates/<token>", "GET", summary="Verify a scrub certificate",
       tag="scrubs", response=Certificate)  # fmt: skip
@limiter.limit(read_limit)
def verify_certificate(token: str) -> Any:
    """Return what a genuine certificate says; a forged or altered one is a 422."""
    return jsonify(services.read_certificate(current_settings(), token))
