"""``/numbers``: carriers report (and retract) disconnections of the numbers in their ranges;
anyone may ask whether a number was reassigned."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any

from flask import jsonify, request
from pydantic import BaseModel, Field

from registry import phones
from registry.api import body, bp, caller, read_limit, require_role, write_limit
from registry.api.openapi import ERRORS, route
from registry.api.schemas import ErrorItem, Phone, Strict, Time
from registry.config import current_settings
from registry.db import get_session
from registry.errors import TooLarge, ValidationFailed
from registry.events.services import Actor
from registry.extensions import limiter
from registry.numbers import ranges, services
from registry.timeutil import iso, within_calendar

MAX_ROWS = 10_000


class DisconnectionsIn(Strict):
    """A carrier's report."""

    disconnections: Annotated[list[Any], Field(min_length=1, max_length=1_000_000)]


class RejectedRow(BaseModel):
    """A row that was not accepted, by its index: ``invalid_phone``, ``validation_error``
    (a time that does not parse, is out of range or in the future), or ``not_your_number``
    (the number is in no range the reporting carrier holds)."""

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
    """Record disconnections (carrier role); bad rows are rejected by index.

    A row for a number outside the caller's ranges is rejected with
    ``not_your_number``; the other rows are still recorded.
    """
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
    accepted, rejected = services.disconnect_many(session, current_settings(), actor, rows)
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
@limiter.limit(read_limit)
def reassigned(phone: str) -> Any:
    """Answer true, false or null (SPEC §4)."""
    caller()
    cfg = current_settings()
    e164 = phones.to_e164(phone, cfg.default_region)  # raises invalid_phone, field "phone"
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


class RetractionIn(Strict):
    """Which disconnection you reported by mistake, and why."""

    phone: Phone
    disconnected_at: Time
    reason: Annotated[str, Field(min_length=1, max_length=500, examples=["wrong line in file"])]


class RetractionOut(BaseModel):
    """The retracted disconnection and what its retraction gave back."""

    id: int
    phone: str
    disconnected_at: str
    carrier: str
    retracted_at: str
    restored_consents: int
    restored_preferences: bool


@route(bp, "/numbers/disconnections/retractions", "POST", summary="Retract a disconnection you reported",
       tag="numbers", body=RetractionIn, response=RetractionOut, responses={404: ERRORS[404]})  # fmt: skip
@limiter.limit(write_limit)
def retract_disconnection() -> Any:
    """Retract a wrong disconnection (only the carrier that reported it); restore what it voided."""
    carrier = require_role("carrier")
    data = body(RetractionIn)
    cfg = current_settings()
    phone = phones.to_e164(data.phone, cfg.default_region)  # raises invalid_phone, field "phone"
    session = get_session()
    found = services.find_disconnection(
        session, phone, services.parse_time(data.disconnected_at, cfg)
    )
    actor = Actor(f"carrier:{carrier.slug}", "api", org_id=carrier.org_id)
    done = services.retract(
        session, actor, found, data.reason, carrier_id=carrier.org_id, by=actor.label
    )
    session.commit()
    return jsonify(_retraction(done, carrier.slug))


def _retraction(done: services.Retraction, carrier: str) -> dict[str, Any]:
    row = done.disconnection
    return {
        "id": row.id,
        "phone": row.phone,
        "disconnected_at": iso(row.disconnected_at),
        "carrier": carrier,
        "retracted_at": iso(row.retracted_at),
        "restored_consents": done.consents,
        "restored_preferences": done.preferences,
    }


class RangeIn(Strict):
    """Sub-assign part of one of your ranges to an MVNO (a carrier organization)."""

    prefix: Annotated[str, Field(min_length=2, max_length=32, examples=["+861700"])]
    carrier: Annotated[str, Field(min_length=2, max_length=64, examples=["mvno-one"])]


class RangeOut(BaseModel):
    """A number range: its prefix, its carrier, and the host range it was sub-assigned from."""

    id: int
    prefix: str
    carrier: str
    host: str | None = None
    host_prefix: str | None = None
    created_at: str
    revoked_at: str | None = None


class RangeList(BaseModel):
    """The ranges you hold and the sub-assignments you made."""

    ranges: list[RangeOut]


def _range(row: ranges.RangeRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "prefix": row.prefix,
        "carrier": row.carrier,
        "host": row.host,
        "host_prefix": row.host_prefix,
        "created_at": iso(row.created_at),
        "revoked_at": iso(row.revoked_at),
    }


def _one(session: Any, org_id: int, range_id: int) -> dict[str, Any]:
    rows = ranges.list_ranges(session, org_id, include_revoked=True)
    return _range(next(r for r in rows if r.id == range_id))


@route(bp, "/numbers/ranges", "GET", summary="Your number ranges", tag="numbers",
       response=RangeList)  # fmt: skip
@limiter.limit(read_limit)
def list_ranges() -> Any:
    """List the live ranges the caller holds and those it sub-assigned (carrier role)."""
    carrier = require_role("carrier")
    rows = ranges.list_ranges(get_session(), carrier.org_id)
    return jsonify({"ranges": [_range(r) for r in rows]})


@route(bp, "/numbers/ranges", "POST", summary="Sub-assign part of your range to an MVNO",
       tag="numbers", body=RangeIn, response=RangeOut, status=201, responses={404: ERRORS[404]})  # fmt: skip
@limiter.limit(write_limit)
def sub_assign_range() -> Any:
    """Give an MVNO a longer prefix inside one of the caller's own ranges.

    From then on the MVNO, and no longer the host, speaks for those numbers.
    """
    carrier = require_role("carrier")
    data = body(RangeIn)
    session = get_session()
    row = ranges.sub_assign(
        session, carrier.org_id, data.prefix, data.carrier, f"carrier:{carrier.slug}"
    )
    session.commit()
    return jsonify(_one(session, carrier.org_id, row.id or 0)), 201


@route(bp, "/numbers/ranges/<id:range_id>/revoke", "POST", summary="Revoke a sub-assignment you made",
       tag="numbers", response=RangeOut, responses={409: "The range is already revoked"})  # fmt: skip
@limiter.limit(write_limit)
def revoke_range(range_id: int) -> Any:
    """Take back a sub-range the caller gave an MVNO; its numbers are the host's again."""
    carrier = require_role("carrier")
    session = get_session()
    ranges.revoke(session, range_id, f"carrier:{carrier.slug}", host_id=carrier.org_id)
    session.commit()
    return jsonify(_one(session, carrier.org_id, range_id))
