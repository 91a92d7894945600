"""``/connections``, ``/network/check``, ``/carrier/*``: the carrier's side of the chain.

A carrier records which organizations it connects and at which addresses (its
attestation of them), withdraws them, checks calls at its switch on behalf of
the network, and sees the complaints and sanctions about the organizations it
connects. A sender proves an address outside every range with a code
(``/senders/<code>/address-proofs``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from flask import jsonify, request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from registry import phones
from registry.access import services
from registry.access.models import KINDS
from registry.api import body, bp, caller, read_limit, require_role, write_limit
from registry.api.openapi import ERRORS, route
from registry.api.schemas import Channel, Phone, Purpose, Reason, Strict, Time
from registry.checks import services as checks
from registry.config import current_settings
from registry.db import get_check_sessions, get_session
from registry.errors import InvalidPhoneError, ValidationFailed
from registry.extensions import limiter
from registry.metrics import count_decision
from registry.senders.services import resolve_sender
from registry.timeutil import iso, utcnow

Kind = Annotated[str, Field(examples=list(KINDS), description=f"one of {', '.join(KINDS)}")]


class ConnectionIn(Strict):
    """The carrier connects ``organization`` at these addresses (its attestation of them)."""

    organization: Annotated[str, Field(min_length=1, max_length=64, examples=["acme-bank"])]
    kind: Kind
    addresses: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(min_length=1, max_length=services.MAX_ADDRESSES, examples=[["10690001"]]),
    ]


class ConnectionOut(BaseModel):
    """One connection: an address a carrier connects for an organization."""

    id: int
    carrier: str
    organization: str
    kind: str
    address: str
    sender: str | None = Field(
        default=None, description="The sender whose address it attests, once one registered it."
    )
    created_at: str
    withdrawn_at: str | None = None


class ConnectionsOut(BaseModel):
    """Connections, newest first."""

    connections: list[ConnectionOut]


class WithdrawIn(Strict):
    """Why the connection ends (the line is disconnected, the contract ended)."""

    reason: Annotated[str, Field(max_length=500)] = ""


def _connection(row: services.ConnectionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "carrier": row.carrier,
        "organization": row.organization,
        "kind": row.kind,
        "address": row.address,
        "sender": row.sender,
        "created_at": iso(row.created_at),
        "withdrawn_at": iso(row.withdrawn_at),
    }


def _shown(session: Session, carrier_id: int, ids: set[int | None]) -> list[dict[str, Any]]:
    """Return the carrier's connections ``ids`` (withdrawn or not) as the API shows them."""
    listed = services.list_connections(session, carrier_id, include_withdrawn=True)
    return [_connection(r) for r in listed if r.id in ids]


@route(bp, "/connections", "POST", summary="Connect an organization at addresses (carrier)",
       tag="carriers", body=ConnectionIn, response=ConnectionsOut, status=201,
       responses={404: ERRORS[404]})  # fmt: skip
@limiter.limit(write_limit)
def create_connection() -> Any:
    """Record the access relation; the organization's senders' addresses are attested at once.

    An E.164 address in another carrier's range is 403 ``not_your_number``; an
    address another organization holds (attested) or another connection
    covers is 409; nothing is recorded then.
    """
    carrier = require_role("carrier")
    data = body(ConnectionIn)
    session = get_session()
    made = services.connect(
        session, carrier.org_id, data.organization, data.kind, data.addresses,
        current_settings().default_region, f"carrier:{carrier.slug}",
    )  # fmt: skip
    session.commit()
    return jsonify({"connections": _shown(session, carrier.org_id, {c.id for c in made})}), 201


@route(bp, "/connections", "GET", summary="List your connections (carrier)", tag="carriers",
       response=ConnectionsOut, query={"withdrawn": "boolean"})  # fmt: skip
@limiter.limit(read_limit)
def list_connections() -> Any:
    """Return the carrier's live connections (``?withdrawn=true``: the withdrawn ones too)."""
    carrier = require_role("carrier")
    raw = request.args.get("withdrawn", "false")
    if raw not in ("true", "false"):
        raise ValidationFailed("withdrawn is true or false", field="withdrawn")
    withdrawn = raw == "true"
    rows = services.list_connections(get_session(), carrier.org_id, include_withdrawn=withdrawn)
    return jsonify({"connections": [_connection(r) for r in rows]})


@route(bp, "/connections/<id:connection_id>/withdraw", "POST",
       summary="Withdraw a connection (carrier); its address is unusable from the next check",
       tag="carriers", body=WithdrawIn, response=ConnectionOut)  # fmt: skip
@limiter.limit(write_limit)
def withdraw_connection(connection_id: int) -> Any:
    """Withdraw one of the carrier's connections (another carrier's: 403)."""
    carrier = require_role("carrier")
    data = body(WithdrawIn)
    session = get_session()
    row = services.withdraw(
        session, carrier.org_id, connection_id, f"carrier:{carrier.slug}", data.reason
    )
    session.commit()
    (shown,) = _shown(session, carrier.org_id, {row.id})
    return jsonify(shown)


# --- network-side checks -----------------------------------------------------------------


class NetworkCheckIn(Strict):
    """A call or text at the carrier's switch: the number called and the calling address."""

    phone: Phone
    from_: Annotated[str, Field(alias="from", min_length=1, max_length=64,
                                examples=["+862160000001"])]  # fmt: skip
    channel: Channel = "voice"
    purpose: Purpose = "marketing"
    at: Time | None = None


class Party(BaseModel):
    """An organization of the chain."""

    slug: str
    name: str


class ChainOut(BaseModel):
    """Who answers for contact from the address (谁发送谁负责, 谁接入谁负责)."""

    sender: dict[str, str]
    merchant: Party
    agent: Party | None = None
    carrier: Party | None = None


class NetworkCheckOut(BaseModel):
    """The answer at the switch: block on ``deny``; the chain names who answers for it."""

    phone: str
    from_: str = Field(alias="from")
    channel: Channel
    decision: Annotated[str, Field(pattern="^(allow|deny)$")]
    reason: Reason
    next_allowed_at: str | None = None
    chain: ChainOut | None = Field(
        default=None, description="null: no sender registered the calling address"
    )
    check_id: str | None = None
    checked_at: str


@route(bp, "/network/check", "POST", summary="Check a call or text at the switch (carrier)",
       tag="carriers", body=NetworkCheckIn, response=NetworkCheckOut)  # fmt: skip
@limiter.limit(lambda: current_settings().ratelimit_check)
def network_check() -> Any:
    """Answer for the network: the calling address names the sender, the chain, the decision.

    The called number must be in one of the carrier's ranges, or the calling
    address one it connects (403 ``not_your_number`` otherwise).
    """
    carrier = require_role("carrier")
    data = body(NetworkCheckIn)
    cfg = current_settings()
    try:
        phone = phones.to_e164(data.phone, cfg.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from exc
    address = services.clean(data.from_, cfg.default_region, "from")
    dbs = get_check_sessions(single=True)
    answer = checks.network_check(
        dbs, cfg, carrier, phone, address, data.channel, data.purpose, data.at
    )
    dbs.commit()
    dec = answer.decision
    count_decision(dec.decision, dec.reason)
    out: dict[str, Any] = {
        "phone": phone,
        "from": address,
        "channel": data.channel,
        "decision": dec.decision,
        "reason": dec.reason,
        "chain": None,
        "check_id": None,
        "checked_at": iso(answer.result.checked_at if answer.result else utcnow()),
    }
    if dec.next_allowed_at is not None:
        out["next_allowed_at"] = iso(dec.next_allowed_at)
    chain = answer.chain
    if chain is not None:
        out["chain"] = {
            "sender": {"code": chain.sender_code, "name": chain.sender_name},
            "merchant": {"slug": chain.merchant, "name": chain.merchant_name},
            "agent": {"slug": chain.agent, "name": chain.agent_name} if chain.agent else None,
            "carrier": {"slug": chain.carrier, "name": chain.carrier_name}
            if chain.carrier
            else None,
        }
    if answer.result is not None:
        out["check_id"] = answer.result.check_id
    return jsonify(out)


# --- what a carrier sees about the organizations it connects ---------------------------------


class CarrierComplaint(BaseModel):
    """A complaint about an organization the carrier connects (the holder's number left out)."""

    id: int
    address: str
    sender: str | None = None
    organization: str | None = None
    agent: str | None = None
    carrier: str | None = None
    channel: str
    contacted_at: str
    status: str
    created_at: str


class CarrierComplaints(BaseModel):
    """A page of complaints by id; ask again with ``after`` = ``next``."""

    complaints: list[CarrierComplaint]
    next: int


class CarrierSanction(BaseModel):
    """A measure against an organization the carrier connects."""

    id: int
    kind: str
    organization: str
    sender: str | None = None
    address: str | None = None
    reason: str
    starts_at: str
    ends_at: str | None = None
    lifted_at: str | None = None


class CarrierSanctions(BaseModel):
    """A page of sanctions by id; ask again with ``after`` = ``next``."""

    sanctions: list[CarrierSanction]
    next: int


def _page() -> tuple[int, int]:
    try:
        after = int(request.args.get("after", "0"))
        limit = int(request.args.get("limit", "100"))
    except ValueError as exc:
        raise ValidationFailed("after and limit are whole numbers", field="after") from exc
    if not 0 <= after <= 2**31 - 1 or not 1 <= limit <= services.MAX_PAGE:
        raise ValidationFailed(f"after >= 0, limit 1 to {services.MAX_PAGE}", field="limit")
    return after, limit


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if hasattr(v, "isoformat") else v for k, v in row.items()}


def _carrier_page(
    name: str, rows_of: Callable[[Session, int, int, int], list[dict[str, Any]]]
) -> Any:
    """Answer a carrier's page of ``name`` by id (``rows_of``: the carrier's rows after an id)."""
    carrier = require_role("carrier")
    after, limit = _page()
    rows = rows_of(get_session(), carrier.org_id, after, limit)
    return jsonify({name: [_times(r) for r in rows], "next": rows[-1]["id"] if rows else after})


@route(bp, "/carrier/complaints", "GET", summary="Complaints about organizations you connect",
       tag="carriers", response=CarrierComplaints,
       query={"after": "integer", "limit": "integer"})  # fmt: skip
@limiter.limit(read_limit)
def carrier_complaints() -> Any:
    """Return, by id after ``after``, complaints about organizations the carrier connects."""
    return _carrier_page("complaints", services.complaints_for_carrier)


@route(bp, "/carrier/sanctions", "GET", summary="Sanctions on organizations you connect",
       tag="carriers", response=CarrierSanctions,
       query={"after": "integer", "limit": "integer"})  # fmt: skip
@limiter.limit(read_limit)
def carrier_sanctions() -> Any:
    """Return, by id after ``after``, sanctions on organizations the carrier connects."""
    return _carrier_page("sanctions", services.sanctions_for_carrier)


# --- proof by code ---------------------------------------------------------------------------


class ProofIn(Strict):
    """Text a one-time code to one of your sender's addresses (outside every range)."""

    address: Annotated[str, Field(min_length=1, max_length=64, examples=["+12025550123"])]


class ProofOut(BaseModel):
    """The proof to confirm with the code the address received."""

    id: str
    address: str
    expires_at: str


class ProofConfirmIn(Strict):
    """The code the address received."""

    code: Annotated[str, Field(min_length=1, max_length=16)]


class AttestedOut(BaseModel):
    """The address, now attested."""

    address: str
    attested_via: str
    attested_at: str


@route(bp, "/senders/<code>/address-proofs", "POST",
       summary="Prove an address outside every range by a code texted to it", tag="senders",
       body=ProofIn, response=ProofOut, status=201)  # fmt: skip
@limiter.limit(write_limit)
def request_address_proof(code: str) -> Any:
    """Text a code to the address; an address in a carrier's range is that carrier's to attest."""
    data = body(ProofIn)
    session = get_session()
    # Scope "owner" is no delegation's: an agent is refused, only the owner proves.
    sender = resolve_sender(session, caller(), code, "owner", utcnow())
    proof, _ = services.request_proof(
        session, current_settings(), sender.id, sender.name, data.address
    )
    session.commit()
    return jsonify(
        {"id": proof.id, "address": proof.address, "expires_at": iso(proof.expires_at)}
    ), 201


@route(bp, "/senders/<code>/address-proofs/<proof_id>/confirm", "POST",
       summary="Confirm an address proof with the code", tag="senders",
       body=ProofConfirmIn, response=AttestedOut)  # fmt: skip
@limiter.limit(write_limit)
def confirm_address_proof(code: str, proof_id: str) -> Any:
    """Attest the address (``via`` code) when the code matches; five wrong codes lock it."""
    data = body(ProofConfirmIn)
    session = get_session()
    sender = resolve_sender(session, caller(), code, "owner", utcnow())
    found = services.confirm_proof(session, sender.id, current_settings(), proof_id, data.code)
    session.commit()  # the attestation, or a wrong code's counted try
    if isinstance(found, ValidationFailed):
        raise found
    return jsonify(
        {
            "address": found.address,
            "attested_via": found.attested_via,
            "attested_at": iso(found.attested_at),
        }
    )
