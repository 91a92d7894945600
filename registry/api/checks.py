"""``/check``, ``/check/batch`` and ``/receipts``: the preflight API."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify
from pydantic import BaseModel, Field

from registry import phones
from registry.api import api_key, body, bp, caller, read_limit, settings
from registry.api.gates import ColdBudget
from registry.api.openapi import route
from registry.api.schemas import (
    Category,
    Channel,
    ErrorItem,
    Phone,
    Purpose,
    Reason,
    SenderCode,
    Strict,
    Time,
)
from registry.checks import services
from registry.db import get_check_sessions, get_session
from registry.errors import InvalidPhoneError
from registry.extensions import limiter
from registry.metrics import count_decision
from registry.timeutil import iso


class CheckIn(Strict):
    """May this sender contact this number on this channel now (or at ``at``)?"""

    phone: Phone
    sender: SenderCode
    channel: Channel
    purpose: Purpose = "marketing"
    category: Category | None = None
    at: Time | None = None


class CheckOut(BaseModel):
    """The registry's answer, with a signed receipt id."""

    phone: str
    sender: str
    channel: Channel
    purpose: Purpose
    category: Category
    decision: Annotated[str, Field(pattern="^(allow|deny)$")]
    reason: Reason
    consent_id: int | None = None
    next_allowed_at: str | None = None
    check_id: str
    checked_at: str
    agent: str | None = None
    on_behalf_of: str | None = None


class BatchIn(Strict):
    """The same question for up to 10,000 numbers."""

    sender: SenderCode
    channel: Channel
    purpose: Purpose = "marketing"
    category: Category | None = None
    at: Time | None = None
    phones: Annotated[list[Any], Field(min_length=1, max_length=100_000)]


class BatchResultItem(BaseModel):
    """One number's answer, or the error that made it unanswerable."""

    input: Any
    phone: str | None = None
    decision: str | None = None
    reason: Reason | None = None
    next_allowed_at: str | None = None
    error: ErrorItem | None = None


class BatchSummary(BaseModel):
    """Counts over the batch."""

    allow: int
    deny: int
    invalid: int


class BatchOut(BaseModel):
    """Results in input order, counts, and the batch's receipt id."""

    results: list[BatchResultItem]
    summary: BatchSummary
    check_id: str


class Receipt(BaseModel):
    """What the registry answered, as the signed receipt proves."""

    check_id: str
    sender: str
    channel: str
    purpose: str | None = None
    checked_at: str
    phone: str | None = None
    decision: str | None = None
    reason: str | None = None
    results: list[dict[str, str]] | None = None
    agent: str | None = None
    on_behalf_of: str | None = None
    registry_seq: int | None = Field(
        default=None,
        description="The change-feed number the registry had reached when it answered: "
        "every change up to it was part of the decision (replay the log to it).",
    )


def _check_limit() -> str:
    return settings().ratelimit_check


def _question(data: CheckIn | BatchIn) -> services.Question:
    return services.Question(data.sender, data.channel, data.purpose, data.category, data.at)


def _budget(sender_code: str, channel: str) -> ColdBudget:
    """Return the budget for checks on numbers the sender has no record with (api/gates.py)."""
    return ColdBudget(
        f"sender {sender_code}",
        f"too many checks on numbers sender {sender_code!r} has no consent or "
        f"opt-out with ({channel})",
    )


@route(
    bp,
    "/check",
    "POST",
    summary="Check one number before contact",
    tag="checks",
    body=CheckIn,
    response=CheckOut,
)
@limiter.limit(_check_limit)
def check() -> Any:
    """Answer allow or deny for one contact, log it, and return a signed receipt."""
    data = body(CheckIn)
    cfg = settings()
    try:
        phone = phones.to_e164(data.phone, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from exc
    dbs = get_check_sessions(single=True)
    result = services.check(
        dbs, cfg, caller(), api_key(), _question(data), phone, _budget(data.sender, data.channel)
    )
    dbs.write.commit()
    source = result.read_from
    dec = result.decision
    count_decision(dec.decision, dec.reason)
    req = result.request
    out: dict[str, Any] = {
        "phone": phone,
        "sender": req.sender.code,
        "channel": req.channel,
        "purpose": req.purpose,
        "category": req.category,
        "decision": dec.decision,
        "reason": dec.reason,
        "check_id": result.check_id,
        "checked_at": iso(result.checked_at),
    }
    if dec.consent_id is not None:
        out["consent_id"] = dec.consent_id
    if dec.next_allowed_at is not None:
        out["next_allowed_at"] = iso(dec.next_allowed_at)
    if req.sender.agent_slug is not None:
        out["agent"], out["on_behalf_of"] = req.sender.agent_slug, req.sender.org_slug
    return jsonify(out), 200, {"X-Anning-Read-From": source}


@route(
    bp,
    "/check/batch",
    "POST",
    summary="Check up to 10,000 numbers",
    tag="checks",
    body=BatchIn,
    response=BatchOut,
)
@limiter.limit(_check_limit)
def check_batch() -> Any:
    """Answer a batch in input order; an invalid number never fails the batch."""
    data = body(BatchIn)
    dbs = get_check_sessions(single=False)
    result = services.check_many(
        dbs, settings(), caller(), api_key(), _question(data), data.phones,
        _budget(data.sender, data.channel),
    )  # fmt: skip
    dbs.write.commit()
    source = result.read_from
    tally: dict[tuple[str, str], int] = {}
    for item in result.items:
        if item.decision is not None:
            key = (item.decision.decision, item.decision.reason)
            tally[key] = tally.get(key, 0) + 1
    for (decision, reason), amount in tally.items():
        count_decision(decision, reason, amount)
    rows: list[dict[str, Any]] = []
    for item in result.items:
        dec = item.decision
        if dec is None:  # an entry is either decided or carries its error
            error = item.error
            rows.append(
                {
                    "input": item.input,
                    "error": {"code": error.code, "message": error.message} if error else None,
                }
            )
            continue
        row = {
            "input": item.input,
            "phone": item.phone,
            "decision": dec.decision,
            "reason": dec.reason,
        }
        if dec.next_allowed_at is not None:
            row["next_allowed_at"] = iso(dec.next_allowed_at)
        rows.append(row)
    return (
        jsonify(
            {
                "results": rows,
                "summary": {
                    "allow": result.allowed,
                    "deny": result.denied,
                    "invalid": result.invalid,
                },
                "check_id": result.check_id,
            }
        ),
        200,
        {"X-Anning-Read-From": source},
    )


@route(
    bp,
    "/receipts/<check_id>",
    "GET",
    summary="Verify a check receipt",
    tag="checks",
    response=Receipt,
)
@limiter.limit(read_limit)
def receipt(check_id: str) -> Any:
    """Return what the registry answered, if the receipt id is genuine (else 422)."""
    return jsonify(services.read_receipt(get_session(), settings(), check_id))
