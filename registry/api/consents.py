"""``/consents`` and ``/consent-requests``: consent with evidence, in one or in bulk."""

from __future__ import annotations

import json
from typing import Annotated, Any

from flask import jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry import phones
from registry.api import actor_for, body, bp, caller, read_limit, write_limit
from registry.api.errors import validation_details
from registry.api.gates import text_gate
from registry.api.openapi import ID_MAX, route
from registry.api.schemas import Category, Channel, ErrorItem, Phone, SenderCode, Strict, Time
from registry.config import current_settings
from registry.consent import otp, records
from registry.consent import services as consents
from registry.consent.models import STATUSES, Consent
from registry.db import get_session
from registry.errors import RegistryError, TooLarge, ValidationFailed
from registry.events.models import Event
from registry.extensions import limiter
from registry.senders.services import SenderRef, code_of, resolve_sender
from registry.timeutil import iso, to_utc, utcnow

MAX_BULK = 10_000
Channels = Annotated[list[Channel], Field(min_length=1, max_length=2)]


class EvidenceIn(Strict):
    """How the holder gave consent, as the sender can prove it."""

    method: Annotated[str, Field(min_length=1, max_length=32, examples=["web_form"])]
    captured_at: Time
    wording: Annotated[str, Field(max_length=2000)] | None = None
    reference: Annotated[str, Field(max_length=500)] | None = None
    sha256: Annotated[str, Field(pattern="^[0-9a-fA-F]{64}$")] | None = None
    ip: Annotated[str, Field(max_length=45)] | None = None


class ConsentIn(Strict):
    """A consent to record."""

    phone: Phone
    sender: SenderCode
    channels: Channels
    category: Category | None = None
    expires_at: Time | None = None
    external_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    evidence: EvidenceIn


class EvidenceOut(BaseModel):
    """Evidence as recorded."""

    method: str
    captured_at: str
    wording: str | None = None
    reference: str | None = None
    sha256: str | None = None
    ip: str | None = None


class HistoryEntry(BaseModel):
    """One event in a consent's life."""

    type: str
    at: str
    actor: str
    via: str
    state: str | None = None


class ConsentOut(BaseModel):
    """A consent and its current state."""

    id: int
    phone: str
    sender: str
    channels: list[str]
    category: str | None = None
    status: str
    expires_at: str | None = None
    external_id: str | None = None
    evidence: EvidenceOut
    created_at: str
    activated_at: str | None = None
    ended_at: str | None = None
    history: list[HistoryEntry] | None = None


class ConsentList(BaseModel):
    """A page of consents."""

    consents: list[ConsentOut]
    next: int | None = None


class ConsentRecords(BaseModel):
    """A page of consents as JSON-LD consent records (ISO/IEC TS 27560 fields, W3C DPV terms)."""

    model_config = ConfigDict(populate_by_name=True)

    context: dict[str, str] = Field(alias="@context")
    records: list[dict[str, Any]]
    next: int | None = None


class BulkIn(Strict):
    """Up to 10,000 consents; each is validated and recorded on its own."""

    consents: Annotated[list[Any], Field(min_length=1, max_length=1_000_000)]


class BulkItem(BaseModel):
    """A recorded consent, or the error that kept one item out."""

    index: int
    consent: ConsentOut | None = None
    created: bool | None = None
    error: ErrorItem | None = None


class BulkOut(BaseModel):
    """Results in input order."""

    results: list[BulkItem]


class ConsentRequestIn(Strict):
    """Ask the registry to text the holder a one-time code."""

    phone: Phone
    sender: SenderCode
    channels: Channels
    category: Category | None = None
    wording: Annotated[str, Field(min_length=1, max_length=500)]


class ConsentRequestOut(BaseModel):
    """The request to confirm with the code the holder tells you."""

    id: str
    expires_at: str


class CodeIn(Strict):
    """The code the holder received."""

    code: Annotated[str, Field(min_length=1, max_length=16)]


def public(
    consent: Consent, sender_code: str, history: list[Event] | None = None
) -> dict[str, Any]:
    """Return a consent as the API shows it."""
    out: dict[str, Any] = {
        "id": consent.id,
        "phone": consent.phone,
        "sender": sender_code,
        "channels": consent.channels.split(","),
        "category": consent.category,
        "status": consent.status,
        "expires_at": iso(consent.expires_at),
        "external_id": consent.external_id,
        "evidence": {
            "method": consent.evidence_method,
            "captured_at": iso(consent.evidence_captured_at),
            "wording": consent.evidence_wording,
            "reference": consent.evidence_reference,
            "sha256": consent.evidence_sha256,
            "ip": consent.evidence_ip,
        },
        "created_at": iso(consent.created_at),
        "activated_at": iso(consent.activated_at),
        "ended_at": iso(consent.ended_at),
    }
    if history is not None:
        out["history"] = [
            {
                "type": e.type.removeprefix("consent."),
                "at": iso(e.at),
                "actor": e.actor,
                "via": e.via,
                "state": e.state,
            }
            for e in history
        ]
    return out


def _phone(raw: str) -> str:
    return phones.to_e164(
        raw, current_settings().default_region
    )  # raises invalid_phone, field "phone"


def _record(data: ConsentIn, senders: dict[str, SenderRef]) -> tuple[Consent, bool, str]:
    cfg = current_settings()
    session = get_session()
    phone = _phone(data.phone)
    sender = senders.get(data.sender)
    if sender is None:
        sender = senders[data.sender] = resolve_sender(
            session, caller(), data.sender, "consent", utcnow()
        )
    ev = data.evidence
    evidence = consents.Evidence(
        method=ev.method,
        captured_at=to_utc(ev.captured_at, cfg.tz),
        wording=ev.wording,
        reference=ev.reference,
        sha256=ev.sha256.lower() if ev.sha256 else None,
        ip=ev.ip,
    )
    consent, created = consents.create_consent(
        session,
        cfg,
        actor_for(sender),
        sender,
        phone,
        list(data.channels),
        evidence,
        category=data.category,
        expires_at=to_utc(data.expires_at, cfg.tz) if data.expires_at else None,
        external_id=data.external_id,
        text_gate=text_gate(),
    )
    return consent, created, sender.code


@route(
    bp,
    "/consents",
    "POST",
    summary="Record a consent with evidence",
    tag="consents",
    body=ConsentIn,
    response=ConsentOut,
    status=201,
    responses={200: "The same external_id again: the consent recorded first, unchanged"},
)
@limiter.limit(write_limit)
def create_consent() -> Any:
    """Record a consent; the same external_id returns the existing one (200)."""
    data = body(ConsentIn)
    consent, created, code = _record(data, {})
    get_session().commit()
    return jsonify(public(consent, code)), 201 if created else 200


@route(
    bp,
    "/consents/bulk",
    "POST",
    summary="Record up to 10,000 consents",
    tag="consents",
    body=BulkIn,
    response=BulkOut,
)
@limiter.limit(write_limit)
def bulk_consents() -> Any:
    """Record each item on its own; one bad item never fails the rest."""
    data = body(BulkIn)
    if len(data.consents) > MAX_BULK:
        raise TooLarge(f"a bulk request holds at most {MAX_BULK} consents", field="consents")
    session = get_session()
    senders: dict[str, SenderRef] = {}
    results: list[dict[str, Any]] = []
    for index, raw in enumerate(data.consents):
        try:
            # Validated as the JSON it came in as, so times obey the same rules as /consents.
            item = ConsentIn.model_validate_json(json.dumps(raw))
            with session.begin_nested():
                consent, created, code = _record(item, senders)
            results.append({"index": index, "consent": public(consent, code), "created": created})
        except ValidationError as exc:
            details = validation_details(exc)
            message = "; ".join(f"{d['field']}: {d['message']}" for d in details)
            results.append(
                {"index": index, "error": {"code": "validation_error", "message": message}}
            )
        except RegistryError as exc:
            results.append({"index": index, "error": {"code": exc.code, "message": exc.message}})
    session.commit()
    return jsonify({"results": results})


@route(bp, "/consents", "GET", summary="List your senders' consents", tag="consents", response=ConsentList,
       query={"phone": "string", "sender": "string", "status": "string", "after": "integer", "limit": "integer"})  # fmt: skip
@limiter.limit(read_limit)
def list_consents() -> Any:
    """Return consents recorded for the caller's organization, filtered, oldest first."""
    rows, limit = _consent_page()
    session = get_session()
    codes: dict[int, str] = {}
    out = []
    for consent in rows:
        if consent.sender_id not in codes:
            codes[consent.sender_id] = code_of(session, consent.sender_id)
        out.append(public(consent, codes[consent.sender_id]))
    return jsonify({"consents": out, "next": rows[-1].id if len(rows) == limit else None})


@route(bp, "/consent-records", "GET", summary="Your senders' consents as ISO/IEC TS 27560 records (W3C DPV)",
       tag="consents", response=ConsentRecords,
       query={"phone": "string", "sender": "string", "status": "string", "after": "integer", "limit": "integer"})  # fmt: skip
@limiter.limit(read_limit)
def consent_records() -> Any:
    """Return the same page as ``GET /consents``, as JSON-LD consent records (docs/consent-records.md)."""
    rows, limit = _consent_page()
    session = get_session()
    codes = {c.sender_id: code_of(session, c.sender_id) for c in rows}
    return jsonify(
        records.export(session, rows, codes, rows[-1].id if len(rows) == limit else None)
    )


def _consent_page() -> tuple[list[Consent], int]:
    """Read the consents page the query asks for (the caller's own records only), and its size."""
    args = request.args
    status = args.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}", field="status")
    phone = _phone(args["phone"]) if args.get("phone") else None
    try:
        after = int(args.get("after", 0))
        limit = min(max(int(args.get("limit", 100)), 1), 1000)
    except ValueError as exc:
        raise ValidationFailed("after and limit must be whole numbers", field="limit") from exc
    if not 0 <= after <= ID_MAX:
        raise ValidationFailed(f"after must be a consent id, 0 to {ID_MAX}", field="after")
    session = get_session()
    sender_id = None
    if args.get("sender"):
        sender_id = resolve_sender(session, caller(), args["sender"], "consent", utcnow()).id
    rows = consents.list_consents(
        session,
        caller().org_id,
        phone=phone,
        sender_id=sender_id,
        status=status,
        after=after,
        limit=limit,
    )
    return rows, limit


def _own_consent(consent_id: int) -> tuple[Consent, SenderRef]:
    session = get_session()
    consent = consents.get_consent(session, consent_id)
    sender = resolve_sender(
        session, caller(), code_of(session, consent.sender_id), "consent", utcnow()
    )
    return consent, sender


@route(
    bp,
    "/consents/<id:consent_id>",
    "GET",
    summary="A consent with its history",
    tag="consents",
    response=ConsentOut,
)
@limiter.limit(read_limit)
def get_consent(consent_id: int) -> Any:
    """Return a consent of the caller's senders, with one history entry per event."""
    consent, sender = _own_consent(consent_id)
    return jsonify(public(consent, sender.code, consents.history(get_session(), consent_id)))


@route(
    bp,
    "/consents/<id:consent_id>/revoke",
    "POST",
    summary="Revoke a consent",
    tag="consents",
    response=ConsentOut,
    responses={409: "The consent is already revoked or expired"},
)
@limiter.limit(write_limit)
def revoke_consent(consent_id: int) -> Any:
    """Revoke a consent at once (the sender heard the holder withdraw it)."""
    consent, sender = _own_consent(consent_id)
    session = get_session()
    consents.revoke(session, consent, actor_for(sender))
    session.commit()
    return jsonify(public(consent, sender.code, consents.history(session, consent_id)))


@route(bp, "/consent-requests", "POST", summary="Text the holder a one-time consent code", tag="consents",
       body=ConsentRequestIn, response=ConsentRequestOut, status=201)  # fmt: skip
@limiter.limit(write_limit)
def create_consent_request() -> Any:
    """Start an OTP-confirmed consent: the registry texts the code, never the caller.

    The code is one of the number's consent texts (REGISTRY_RATELIMIT_CONSENT_NUMBER,
    whoever asks: api/gates.py), shared with the confirmations of pending consents.
    """
    data = body(ConsentRequestIn)
    session = get_session()
    phone = _phone(data.phone)
    sender = resolve_sender(session, caller(), data.sender, "consent", utcnow())
    req, _code = otp.request_consent(
        session,
        current_settings(),
        actor_for(sender),
        sender,
        phone,
        list(data.channels),
        data.wording,
        data.category,
        text_gate=text_gate(),
    )
    session.commit()
    return jsonify({"id": req.id, "expires_at": iso(req.expires_at)}), 201


@route(bp, "/consent-requests/<request_id>/confirm", "POST", summary="Confirm with the holder's code",
       tag="consents", body=CodeIn, response=ConsentOut, status=201)  # fmt: skip
@limiter.limit("30 per minute")
def confirm_consent_request(request_id: str) -> Any:
    """Create an active consent (evidence method otp) if the code is right."""
    data = body(CodeIn)
    session = get_session()
    req = otp.get_request(session, request_id)
    sender = resolve_sender(session, caller(), code_of(session, req.sender_id), "consent", utcnow())
    consent = otp.confirm_request(
        session, current_settings(), actor_for(sender), sender, req, data.code
    )
    session.commit()  # the consent, or a wrong code's counted try
    if isinstance(consent, ValidationFailed):
        raise consent
    return jsonify(public(consent, sender.code, consents.history(session, consent.id or 0))), 201
