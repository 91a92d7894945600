"""``/senders``: an organization's sending identities."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify
from pydantic import BaseModel, Field

from registry.api import body, bp, caller, read_limit, write_limit
from registry.api.openapi import route
from registry.api.schemas import Category, SenderCode, Strict
from registry.config import current_settings
from registry.db import get_session
from registry.errors import Conflict
from registry.extensions import limiter
from registry.senders import services
from registry.senders.models import Sender
from registry.timeutil import iso


class SenderCreate(Strict):
    """A new sender: unique code, the name holders see, default category, addresses."""

    code: SenderCode
    name: Annotated[str, Field(min_length=1, max_length=200)]
    category: Category
    addresses: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=100)] = []


class AddressStatus(BaseModel):
    """An address and its attestation: usable as a check's ``from`` when attested, not withdrawn."""

    address: str
    attested_via: str | None = Field(
        default=None, description="connection (a carrier's) or code; null: not attested yet"
    )
    attested_at: str | None = None
    carrier: str | None = None
    withdrawn_at: str | None = None
    suspended_until: str | None = None


class SenderPublic(BaseModel):
    """A sender as its organization sees it."""

    code: str
    name: str
    category: str
    addresses: list[str]
    suspended_until: str | None = None
    address_status: list[AddressStatus] = []


class AddressesIn(Strict):
    """More addresses for one of your senders."""

    addresses: Annotated[
        list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=100)
    ]


class SenderList(BaseModel):
    """The organization's senders."""

    senders: list[SenderPublic]


def _public(
    sender: Sender, addresses: list[str], states: list[services.AddressState]
) -> dict[str, Any]:
    return {
        "code": sender.code,
        "name": sender.name,
        "category": sender.category,
        "addresses": addresses,
        "suspended_until": iso(sender.suspended_until),
        "address_status": [
            {
                "address": a.address,
                "attested_via": a.attested_via,
                "attested_at": iso(a.attested_at),
                "carrier": a.carrier,
                "withdrawn_at": iso(a.withdrawn_at),
                "suspended_until": iso(a.suspended_until),
            }
            for a in states
        ],
    }


def _own_number(addresses: list[str]) -> None:
    for i, address in enumerate(addresses):
        # Texts from the registry's own number speak for the registry, and replies
        # to it for the holder: no sender may present it.
        if address.replace(" ", "").replace("-", "") == current_settings().sms_number:
            raise Conflict("that is the registry's own number", field=f"addresses.{i}")


@route(bp, "/senders", "GET", summary="List your senders", tag="senders", response=SenderList)
@limiter.limit(read_limit)
def list_senders() -> Any:
    """Return the caller's senders."""
    session = get_session()
    rows = services.list_senders(session, caller().org_id)
    states = services.address_states(session, [s.id or 0 for s, _ in rows])
    return jsonify({"senders": [_public(s, a, states.get(s.id or 0, [])) for s, a in rows]})


@route(
    bp,
    "/senders",
    "POST",
    summary="Register a sender",
    tag="senders",
    body=SenderCreate,
    response=SenderPublic,
    status=201,
)
@limiter.limit(write_limit)
def create_sender() -> Any:
    """Register a sender for the caller's organization."""
    data = body(SenderCreate)
    _own_number(data.addresses)
    session = get_session()
    sender, addresses = services.create_sender(
        session, caller().org_id, data.code, data.name, data.category, data.addresses,
        current_settings().default_region,
    )  # fmt: skip
    session.commit()
    states = services.address_states(session, [sender.id or 0])
    return jsonify(_public(sender, addresses, states.get(sender.id or 0, []))), 201


@route(bp, "/senders/<code>/addresses", "POST", summary="Add addresses to your sender",
       tag="senders", body=AddressesIn, response=SenderPublic, status=201)  # fmt: skip
@limiter.limit(write_limit)
def add_addresses(code: str) -> Any:
    """Register more addresses; each is usable as ``from`` once attested (a carrier, a code)."""
    data = body(AddressesIn)
    _own_number(data.addresses)
    session = get_session()
    sender = services.add_addresses(
        session, caller().org_id, code, data.addresses, current_settings().default_region
    )
    session.commit()
    states = services.address_states(session, [sender.id or 0]).get(sender.id or 0, [])
    return jsonify(_public(sender, [a.address for a in states], states)), 201
