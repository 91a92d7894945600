"""``/numbers``: carriers report disconnections; anyone may ask whether a number was reassigned."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from flask import jsonify, request
from pydantic import BaseModel, Field

from registry import phones
from registry.api import body, bp, caller, require_role, settings, write_limit
from registry.api.openapi import route
from registry.api.schemas import ErrorItem, Strict
from registry.db import get_session
from registry.errors import InvalidPhoneError, TooLarge, ValidationFailed
from registry.events.services import Actor
from registry.extensions import limiter
from registry.numbers import services
from registry.timeutil import within_calendar

MAX_ROWS = 10_000


class DisconnectionsIn(Strict):
    """A carrier's report."""

    disconnections: Annotated[list[Any], Field(min_length=1, max_length=1_000_000)]


class RejectedRow(BaseModel):
    """A row that was not accepted."""

    index: int
    error: ErrorItem


class DisconnectionsOut(BaseModel):
    """How many rows were taken, and which were not."""

    accepted: int
    rejected: list[RejectedRow]


class ReassignedOut(BaseModel):
    """Whether the number changed hands since the date (null: the data cannot say)."""

    phone: str
    since: str
    reassigned: bool | None


@route(bp, "/numbers/disconnections", "POST", summary="Report disconnected numbers", tag="numbers",
       body=DisconnectionsIn, response=DisconnectionsOut, status=202)  # fmt: skip
@limiter.limit(write_limit)
def report_disconnections() -> Any:
    """Record disconnections (carrier role); bad rows are rejected by index."""
    carrier = require_role("carrier")
    data = body(DisconnectionsIn)
    if len(data.disconnections) > MAX_ROWS:
        raise TooLarge(f"a report holds at most {MAX_ROWS} rows", field="disconnections")
    rows: list[tuple[object, object]] = [
        (r.get("phone"), r.get("disconnected_at")) if isinstance(r, dict) else (None, None)
        for r in data.disconnections
    ]
    session = get_session()
    actor = Actor(f"carrier:{carrier.slug}", "api", org_id=carrier.org_id)
    accepted, rejected = services.disconnect_many(session, settings(), actor, rows)
    session.commit()
    return jsonify(
        {
            "accepted": accepted,
            "rejected": [
                {"index": r.index, "error": {"code": r.error.code, "message": r.error.message}}
                for r in rejected
            ],
        }
    ), 202


@route(bp, "/numbers/<phone>/reassigned", "GET", summary="Was this number reassigned since a date?",
       tag="numbers", response=ReassignedOut, query={"since": "string"})  # fmt: skip
def reassigned(phone: str) -> Any:
    """Answer true, false or null (SPEC §4)."""
    caller()
    cfg = settings()
    try:
        e164 = phones.to_e164(phone, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from exc
    raw = request.args.get("since", "")
    try:
        since = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed("since must be a date, YYYY-MM-DD", field="since") from exc
    try:
        within_calendar(datetime.combine(since, time()))
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="since") from exc
    answer = services.reassigned(get_session(), cfg, e164, since)
    return jsonify({"phone": e164, "since": since.isoformat(), "reassigned": answer})
