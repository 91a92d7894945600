"""``/complaints``, ``/compliance``, ``/sanctions/<id>/appeal``: complaints beyond the site.

A reporting platform (role ``reporter``) files complaints for holders who
proved their number to it; an organization a complaint was routed to reads it
and answers; every organization reads its compliance view and may appeal a
sanction against it (docs/complaints.md).

How a reporter proves the number: it attests, in ``verification``, how it
verified the holder holds the number (``sms_code``: it texted a one-time code
and the holder typed it back; ``carrier_account``: the holder is signed in to
the carrier's own app for that number; ``device_sim``: the handset read the
number from its SIM) and when. The registry records the attestation with the
complaint, under the reporter's name; the holder sees both on the site, and a
false attestation is the reporter's, on the record.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify, request
from pydantic import BaseModel, Field

from registry import phones
from registry.api import body, bp, caller, read_limit, require_role, write_limit
from registry.api.openapi import route
from registry.api.schemas import Channel, Phone, Strict, Time
from registry.complaints import compliance, routing
from registry.complaints import services as complaints
from registry.complaints.models import ACTIONS, TYPES, VERIFICATIONS, Complaint
from registry.config import current_settings
from registry.db import get_session
from registry.errors import Forbidden, InvalidPhoneError, ValidationFailed
from registry.extensions import limiter
from registry.orgs.services import get_org
from registry.timeutil import iso, to_utc, utcnow

ComplaintType = Literal[TYPES]  # type: ignore[valid-type]
Verification = Literal[VERIFICATIONS]  # type: ignore[valid-type]
Action = Literal[ACTIONS]  # type: ignore[valid-type]


class VerificationIn(Strict):
    """How the reporter verified that the holder holds the number, and when."""

    method: Verification
    verified_at: Time
    reference: Annotated[str, Field(max_length=100)] | None = None


class ComplaintIn(Strict):
    """A complaint a reporting platform files for a holder, with the evidence."""

    phone: Phone
    address: Annotated[str, Field(min_length=3, max_length=32, examples=["10690001"])]
    channel: Channel
    contacted_at: Time
    type: ComplaintType = "no_consent"
    text: Annotated[str, Field(max_length=2000)] | None = None
    verification: VerificationIn


class ComplaintOut(BaseModel):
    """A complaint as its reporter or an organization it was routed to sees it."""

    id: int
    reference: str
    type: str
    intake: str
    police: bool
    status: str
    verdict: str | None = None
    duplicate_of: str | None = None
    address: str
    channel: str
    contacted_at: str
    created_at: str
    role: str | None = None
    due_on: str | None = None
    answered_at: str | None = None
    late: bool | None = None
    overdue: bool | None = None


class ComplaintList(BaseModel):
    """Complaints routed to you (or, for a reporter, filed by you), newest first."""

    complaints: list[dict[str, Any]]


class AnswerIn(Strict):
    """An organization's answer: what it found, what it did, attachments as references.

    ``dispute`` carries a receipt (a ``check_id``) the organization holds to show
    it checked and was allowed before the contact."""

    found: Annotated[str, Field(min_length=1, max_length=2000)]
    action: Action
    attachments: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                           Field(max_length=20)] = []  # fmt: skip
    dispute: Annotated[str, Field(min_length=1, max_length=400)] | None = None


class AnswerOut(BaseModel):
    """The answer as recorded: ``late`` when after the deadline (kept all the same)."""

    complaint: str
    role: str
    answered_at: str
    due_on: str
    late: bool
    dispute_valid: bool | None = None


class ComplianceOut(BaseModel):
    """Your compliance view: complaint figures, answers due, sanctions and appeals."""

    complaints: int
    verdicts: dict[str, int]
    answers_due: int
    overdue: int
    late: int
    due: list[dict[str, Any]]
    sanctions: list[dict[str, Any]]


class AppealIn(Strict):
    """Appeal a sanction against your organization."""

    grounds: Annotated[str, Field(min_length=1, max_length=4000)]


class AppealOut(BaseModel):
    """An appeal as recorded."""

    id: int
    sanction: int
    status: str
    created_at: str


def _out(c: Complaint) -> dict[str, Any]:
    return {
        "id": c.id,
        "reference": c.reference,
        "type": c.type,
        "intake": c.intake,
        "police": c.police,
        "status": c.status,
        "verdict": c.verdict,
        "duplicate_of": f"TS{c.duplicate_of:07d}" if c.duplicate_of else None,
        "address": c.address,
        "channel": c.channel,
        "contacted_at": iso(c.contacted_at),
        "created_at": iso(c.created_at),
    }


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if hasattr(v, "tzinfo") else v for k, v in item.items()}


@route(bp, "/complaints", "POST", summary="File a complaint for a holder (role reporter)",
       tag="complaints", body=ComplaintIn, response=ComplaintOut, status=201)  # fmt: skip
@limiter.limit(write_limit)
def file_complaint() -> Any:
    """File a complaint for a holder who proved the number to you; it is routed at once."""
    reporter = require_role("reporter")
    data = body(ComplaintIn)
    cfg = current_settings()
    try:
        phone = phones.to_e164(data.phone, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from exc
    how = complaints.Intake(
        type=data.type,
        intake="reporter",
        reporter_id=reporter.org_id,
        verification=data.verification.method,
        verified_at=to_utc(data.verification.verified_at, cfg.tz),
        verification_ref=data.verification.reference,
    )
    session = get_session()
    complaint = routing.lodge(
        session, cfg, phone, data.address, data.channel,
        to_utc(data.contacted_at, cfg.tz), data.text, how,
    )  # fmt: skip
    session.commit()
    return jsonify(_out(complaint)), 201


@route(bp, "/complaints", "GET", summary="Complaints routed to you, or filed by you (reporter)",
       tag="complaints", response=ComplaintList, query={"due": "boolean"})  # fmt: skip
@limiter.limit(read_limit)
def list_complaints() -> Any:
    """Return the complaints routed to you (``due=true``: those still to answer, soonest first)."""
    me = caller()
    session = get_session()
    if me.role == "reporter":
        return jsonify({"complaints": [_out(c) for c in complaints.filed_by(session, me.org_id)]})
    raw = request.args.get("due")
    if raw not in (None, "true", "false"):
        raise ValidationFailed("due must be true or false", field="due")
    due = raw == "true"
    items = compliance.routed_to(session, current_settings(), me.org_id, utcnow(), due_only=due)
    return jsonify({"complaints": [_plain(i) for i in items]})


@route(bp, "/complaints/<int:complaint_id>", "GET", summary="One complaint routed to you",
       tag="complaints", response=ComplaintOut)  # fmt: skip
@limiter.limit(read_limit)
def get_complaint(complaint_id: int) -> Any:
    """Return a complaint routed to you (or filed by you, for a reporter); else 403."""
    me = caller()
    session = get_session()
    complaint = complaints.get(session, complaint_id)
    if me.role == "reporter":
        if complaint.reporter_id != me.org_id:
            raise Forbidden("your organization did not file this complaint")
        return jsonify(_out(complaint))
    row = routing.route_of(session, complaint, me.org_id)
    return jsonify(
        {
            **_out(complaint),
            "text": complaint.text,
            "role": row.role,
            "due_on": row.due_on.isoformat(),
            "answered_at": iso(row.answered_at),
            "late": row.late,
        }
    )


@route(bp, "/complaints/<int:complaint_id>/answer", "POST",
       summary="Answer a complaint routed to you", tag="complaints", body=AnswerIn,
       response=AnswerOut, status=201)  # fmt: skip
@limiter.limit(write_limit)
def answer_complaint(complaint_id: int) -> Any:
    """Say what you found and did; dispute with a receipt you hold. Late answers are kept."""
    me = caller()
    data = body(AnswerIn)
    session = get_session()
    complaint = complaints.get(session, complaint_id)
    given = routing.Answer(data.found, data.action, list(data.attachments), data.dispute)
    row = routing.answer(
        session, current_settings(), complaint, get_org(session, me.slug), given, utcnow()
    )
    session.commit()
    return jsonify(
        {
            "complaint": complaint.reference,
            "role": row.role,
            "answered_at": iso(row.answered_at),
            "due_on": row.due_on.isoformat(),
            "late": row.late,
            "dispute_valid": row.dispute_valid,
        }
    ), 201


@route(bp, "/compliance", "GET", summary="Your compliance view", tag="complaints",
       response=ComplianceOut)  # fmt: skip
@limiter.limit(read_limit)
def compliance_view() -> Any:
    """Return your complaint figures, the answers you owe, your sanctions and appeals."""
    me = caller()
    session = get_session()
    now = utcnow()
    s = compliance.summary(session, current_settings(), me.org_id, now)
    return jsonify(
        {
            "complaints": s.complaints,
            "verdicts": s.verdicts,
            "answers_due": s.answers_due,
            "overdue": s.overdue,
            "late": s.late,
            "due": [_plain(i) for i in compliance.routed_to(session, current_settings(), me.org_id,
                                                            now, due_only=True)],
            "sanctions": [_plain(i) for i in compliance.sanctions_of(session, me.org_id)],
        }
    )  # fmt: skip


@route(bp, "/sanctions/<int:sanction_id>/appeal", "POST", summary="Appeal a sanction against you",
       tag="complaints", body=AppealIn, response=AppealOut, status=201,
       responses={409: "The sanction is already under appeal"})  # fmt: skip
@limiter.limit(write_limit)
def appeal_sanction(sanction_id: int) -> Any:
    """Appeal a sanction against your organization (once per sanction)."""
    me = caller()
    data = body(AppealIn)
    session = get_session()
    row = compliance.appeal(session, me.org_id, me.slug, sanction_id, data.grounds)
    session.commit()
    return jsonify(
        {"id": row.id, "sanction": row.sanction_id, "status": row.status,
         "created_at": iso(row.created_at)}
    ), 201  # fmt: skip
