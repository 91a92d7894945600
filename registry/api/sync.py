"""``/sync/compare``: find drift between a platform's copy and the registry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify
from pydantic import BaseModel, Field

from registry.api import body, bp, caller, write_limit
from registry.api.gates import cold_gate
from registry.api.openapi import route
from registry.api.schemas import Channel, ErrorItem, Phone, SenderCode, Strict, Time
from registry.config import current_settings
from registry.db import get_session
from registry.errors import TooLarge
from registry.extensions import limiter
from registry.sync import compare
from registry.timeutil import to_utc, utcnow

State = Literal["allowed", "denied"]


class CompareRow(Strict):
    """One row of your copy. ``state``: ``allowed`` if your copy says the sender may
    contact the number for marketing on the channel (a consent, or an opt-out
    registry with nothing against it), ``denied`` if not (opt-out, DND, category
    block, no consent, pending consent...). Calling and quiet hours are not part
    of the state."""

    phone: Phone
    sender: SenderCode
    channel: Channel
    state: State


class CompareIn(Strict):
    """A page of your rows (up to 10,000), compared as of ``at`` (default now)."""

    rows: Annotated[list[CompareRow], Field(min_length=1, max_length=1_000_000)]
    at: Time | None = None


class Difference(BaseModel):
    """A row where the registry says otherwise: its ``state`` and ``reason`` (SPEC §3)."""

    index: int
    phone: str
    sender: str
    channel: str
    state: State
    yours: State
    reason: str


class RowError(BaseModel):
    """A row that could not be compared (bad number, a sender not yours)."""

    index: int
    error: ErrorItem


class CompareOut(BaseModel):
    """Only the rows that differ, and the rows in error, by index in your page."""

    compared: int
    differences: list[Difference]
    errors: list[RowError]


@route(bp, "/sync/compare", "POST", summary="Compare your rows with the registry", tag="sync",
       body=CompareIn, response=CompareOut)  # fmt: skip
@limiter.limit(write_limit)
def compare_rows() -> Any:
    """Return the rows of the page that differ from the registry; logged and limited as checks."""
    data = body(CompareIn)
    if len(data.rows) > compare.MAX_ROWS:
        raise TooLarge(f"a page holds at most {compare.MAX_ROWS} rows", field="rows")
    cfg = current_settings()
    at = to_utc(data.at, cfg.tz) if data.at else utcnow()
    rows = [compare.Row(r.phone, r.sender, r.channel, r.state) for r in data.rows]
    session = get_session()
    gate = cold_gate(
        "sync compare", "too many compared rows on numbers your senders have no record with"
    )
    differences, errors = compare.compare(session, cfg, caller(), rows, at, gate)
    session.commit()  # every answer is logged, as a check's
    return jsonify(
        {"compared": len(rows) - len(errors), "differences": differences, "errors": errors}
    )
