"""``/check``, ``/check/batch`` and ``/receipts``: the preflight API."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _encode
from typing import Annotated, Any, cast

from flask import Response, current_app, jsonify
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, Field

from registry import phones
from registry.api import api_key, body, bp, caller, query, read_limit
from registry.api.gates import ColdBudget, check_budget, request_limit
from registry.api.openapi import RECEIPT_HEADERS, route
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
from registry.checks import checklog, history, services
from registry.config import current_settings
from registry.db import get_check_sessions, get_session
from registry.errors import InvalidPhoneError, RegistryError
from registry.metrics import count_decision
from registry.timeutil import iso

# The calling number or SMS port the contact will come from (issue 15).
From = Annotated[
    str | None,
    Field(
        default=None,
        alias="from",
        max_length=64,
        examples=["+862160000001"],
        description="The calling number or SMS port the contact will come from: any form "
        "phonenumbers accepts (stored E.164), SMS ports and short codes as digits. Not an "
        "attested, live address of the sender: deny unregistered_caller. Required when the "
        "registry sets REGISTRY_REQUIRE_FROM.",
    ),
]


class CheckIn(Strict):
    """May this sender contact this number on this channel now (or at ``at``)?"""

    phone: Phone
    sender: SenderCode
    channel: Channel
    purpose: Purpose = "marketing"
    category: Category | None = None
    at: Time | None = None
    from_: From = None


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
    data_version: int = Field(
        description="The registry's data version: the change-feed position (GET /changes) "
        "every change up to which was part of this answer.",
    )
    valid_until: str = Field(
        description="Until when the answer may be relied on (REGISTRY_RESULT_VALIDITY); "
        "by default equal to checked_at: check again before each contact.",
    )
    agent: str | None = None
    on_behalf_of: str | None = None
    from_: str | None = Field(default=None, alias="from")


class BatchIn(Strict):
    """The same question for up to 10,000 numbers."""

    sender: SenderCode
    channel: Channel
    purpose: Purpose = "marketing"
    category: Category | None = None
    at: Time | None = None
    phones: Annotated[list[Any], Field(min_length=1, max_length=100_000)]
    from_: From = None


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
    checked_at: str
    data_version: int = Field(
        description="The registry's data version: the change-feed position (GET /changes) "
        "every change up to which was part of this answer.",
    )
    valid_until: str = Field(
        description="Until when the answer may be relied on (REGISTRY_RESULT_VALIDITY); "
        "by default equal to checked_at: check again before each contact.",
    )
    from_: str | None = Field(default=None, alias="from")


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
    from_: str | None = Field(default=None, alias="from")
    registry_seq: int | None = Field(
        default=None,
        description="The change-feed number the registry had reached when it answered: "
        "every change up to it was part of the decision (replay the log to it).",
    )
    data_version: int | None = Field(
        default=None,
        description="The same feed position as registry_seq, under the name "
        "answers and scrub certificates use (absent on receipts signed before it existed).",
    )
    valid_until: str | None = Field(
        default=None,
        description="Until when the answer may be relied on, as signed "
        "(absent on receipts signed before it existed).",
    )


def _check_limit() -> str:
    return current_settings().ratelimit_check


def _question(data: CheckIn | BatchIn) -> services.Question:
    cfg = current_settings()
    caller_address = None
    if data.from_ is not None:
        try:
            caller_address = phones.to_address(data.from_, cfg.default_region)
        except phones.InvalidPhone as exc:
            raise InvalidPhoneError(str(exc), field="from") from exc
    elif cfg.require_from:
        raise RegistryError(
            "this registry requires every check to name its calling address: "
            "send 'from' (the calling number or SMS port)",
            field="from",
        )
    return services.Question(
        data.sender, data.channel, data.purpose, data.category, data.at, caller_address
    )


def _budget(sender_code: str, channel: str) -> ColdBudget:
    """Return the budget for checks on numbers the sender has no record with (api/gates.py)."""
    return check_budget(sender_code, channel)


def _answer(data: CheckIn) -> tuple[services.CheckResult, str]:
    """Answer one check (the JSON and the plain-text forms alike); return it and its source.

    The calling address (``from``, SPEC §3 step 1a) is carried in the question.
    """
    cfg = current_settings()
    try:
        phone = phones.to_e164(data.phone, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from exc
    dbs = get_check_sessions(single=True)
    question = _question(data)
    result = services.check(
        dbs, cfg, caller(), api_key(), question, phone, _budget(data.sender, data.channel)
    )
    dbs.commit()  # nothing to commit when the log row went by dbs.direct, committed
    count_decision(result.decision.decision, result.decision.reason)
    return result, result.read_from


def _receipt_headers(
    result: services.CheckResult, source: str, checked_at: str | None = None
) -> dict[str, str]:
    """Return the receipt's headers; ``checked_at``: the check's time, when already formatted."""
    return {
        "X-Anning-Check-Id": result.check_id,
        "X-Anning-Checked-At": checked_at or iso(result.checked_at),
        "X-Anning-Read-From": source,
    }


@route(
    bp,
    "/check",
    "POST",
    summary="Check one number before contact",
    tag="checks",
    body=CheckIn,
    response=CheckOut,
    response_headers=RECEIPT_HEADERS,
)
@request_limit(_check_limit)
def check() -> Any:
    """Answer allow or deny for one contact, log it, and return a signed receipt."""
    result, source = _answer(body(CheckIn))
    dec, req = result.decision, result.request
    out: dict[str, Any] = {
        "phone": result.phone,
        "sender": req.sender.code,
        "channel": req.channel,
        "purpose": req.purpose,
        "category": req.category,
        "decision": dec.decision,
        "reason": dec.reason,
        "check_id": result.check_id,
        "checked_at": iso(result.checked_at),
        "data_version": result.data_version,
        "valid_until": iso(result.valid_until or result.checked_at),
    }
    if dec.consent_id is not None:
        out["consent_id"] = dec.consent_id
    if dec.next_allowed_at is not None:
        out["next_allowed_at"] = iso(dec.next_allowed_at)
    if req.sender.agent_slug is not None:
        out["agent"], out["on_behalf_of"] = req.sender.agent_slug, req.sender.org_slug
    if req.caller is not None:
        out["from"] = req.caller
    return jsonify(out), 200, _receipt_headers(result, source, out["checked_at"])


class CheckTextIn(CheckIn):
    """The single check as query parameters, for a dial plan or a routing script (``check.txt``).

    The same fields as ``CheckIn``, ``from`` included (the calling number, step 1a).
    """


TEXT_QUERY = {
    "phone": "string", "sender": "string", "channel": "string", "purpose": "string",
    "category": "string", "at": "string", "from": "string",
}  # fmt: skip


@route(
    bp,
    "/check.txt",
    "GET",
    summary="Check one number before contact, in one plain-text line (dial plans, SIP proxies)",
    tag="checks",
    query=TEXT_QUERY,
    media="text/plain",
    text_example="DENY dnd",
    response_headers=RECEIPT_HEADERS,
)
@request_limit(_check_limit)
def check_text() -> Any:
    """Answer ``ALLOW <reason>`` or ``DENY <reason> [<next_allowed_at>]``: the check of ``/check``.

    The same key, limits, log and signed receipt (in ``X-Anning-Check-Id``);
    errors are one line too, ``ERROR <code> <message>``, with the JSON
    check's status (api/errors.py).
    """
    data = query(CheckTextIn)
    result, source = _answer(data)
    dec = result.decision
    words = [dec.decision.upper(), dec.reason]
    if dec.next_allowed_at is not None:
        words.append(iso(dec.next_allowed_at))
    text = " ".join(words) + "\n"
    return (
        text,
        200,
        {"Content-Type": "text/plain; charset=utf-8", **_receipt_headers(result, source)},
    )


@route(
    bp,
    "/check/batch",
    "POST",
    summary="Check up to 10,000 numbers",
    tag="checks",
    body=BatchIn,
    response=BatchOut,
)
@request_limit(_check_limit)
def check_batch() -> Any:
    """Answer a batch in input order; an invalid number never fails the batch."""
    # The rows below live until the answer is rendered: no cyclic collection
    # meanwhile (services.cycles_collected_after).
    with services.cycles_collected_after():
        return _answer_batch()


def _answer_batch() -> Any:
    data = body(BatchIn)
    question = _question(data)
    dbs = get_check_sessions(single=False)
    # On PostgreSQL the log rows and the COMMIT are sent, not waited for
    # (checklog.log_batch's ``overlap``): the answer is rendered while the
    # server writes them, and leaves only once both are done (settle, commit).
    try:
        result = services.check_many(
            dbs, current_settings(), caller(), api_key(), question, data.phones,
            _budget(data.sender, data.channel), overlap=True,
        )  # fmt: skip
        response, tally = _render_batch(result)
    except BaseException as exc:
        checklog.abandon(dbs.write, exc)
        raise
    checklog.settle(dbs.write)
    dbs.write.commit()
    for (decision, reason), amount in tally.items():
        count_decision(decision, reason, amount)
    return response, 200, {"X-Anning-Read-From": result.read_from}


def _render_batch(
    result: services.BatchResult,
) -> tuple[Response, dict[tuple[str, str], int]]:
    """Return the batch's answer as ``jsonify`` renders it, and its decisions' counts.

    Built as text: numbers of one shape share one Decision object
    (services.decide_all), so the end of each result object (decision,
    reason, next_allowed_at) is rendered once per Decision and each entry
    adds its input and phone, encoded as ``json.dumps`` encodes strings
    (``ensure_ascii``, as the app's JSON provider); other inputs (a number
    given as a number, an object) and the errors go through the provider
    itself. Per entry dicts through ``jsonify`` cost more than the rest of
    the answer. The bytes are ``jsonify``'s (tests/api/test_check.py
    compares them); in debug mode the text is indented by ``jsonify``.
    """
    provider = cast(DefaultJSONProvider, current_app.json)  # the app's (registry/app.py)
    compact = {"separators": (",", ":")}

    def text(value: Any) -> str:
        if type(value) is str:
            return _encode(value)
        return provider.dumps(value, **compact)

    decisions = result.decisions
    # By Decision object: the text after the phone, and how many entries it answers.
    ends: dict[int, list[Any]] = {}
    rows: list[str] = []
    add = rows.append
    for raw, phone, error in result.entries:
        if phone is None:
            fault = {"code": error.code, "message": error.message} if error else None
            add(f'{{"input":{text(raw)},"error":{text(fault)}}}')
            continue
        dec = decisions[phone]
        end = ends.get(id(dec))
        if end is None:
            after = f',"decision":{_encode(dec.decision)},"reason":{_encode(dec.reason)}'
            if dec.next_allowed_at is not None:
                after += f',"next_allowed_at":{_encode(iso(dec.next_allowed_at))}'
            end = ends[id(dec)] = [after + "}", 0, dec]
        end[1] += 1
        given = _encode(raw)  # a number's input is a string (services.normalize_many)
        add(f'{{"input":{given},"phone":{given if raw == phone else _encode(phone)}{end[0]}')
    tally: dict[tuple[str, str], int] = {}
    for _, amount, dec in ends.values():
        key = (dec.decision, dec.reason)
        tally[key] = tally.get(key, 0) + amount
    rest: dict[str, Any] = {
        "summary": {"allow": result.allowed, "deny": result.denied, "invalid": result.invalid},
        "check_id": result.check_id,
        "checked_at": iso(result.checked_at) if result.checked_at else None,
        "data_version": result.data_version,
        "valid_until": iso(result.valid_until) if result.valid_until else None,
    }
    if result.request.caller is not None:
        rest["from"] = result.request.caller
    # ``results`` first, then the rest as the provider renders it (its opening brace dropped).
    out = f'{{"results":[{",".join(rows)}],{provider.dumps(rest, **compact)[1:]}'
    if (provider.compact is None and current_app.debug) or provider.compact is False:
        return jsonify(json.loads(out)), tally  # indented, as jsonify renders in debug mode
    return current_app.response_class(f"{out}\n", mimetype=provider.mimetype), tally


@route(
    bp,
    "/receipts/<check_id>",
    "GET",
    summary="Verify a check receipt",
    tag="checks",
    response=Receipt,
)
@request_limit(read_limit)
def receipt(check_id: str) -> Any:
    """Return what the registry answered, if the receipt id is genuine (else 422)."""
    return jsonify(history.read_receipt(get_session(), current_settings(), check_id))
