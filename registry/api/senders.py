"""``/senders``: an organization's sending identities."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify
from pydantic import BaseModel, Field

from registry.api import body, bp, caller, read_limit, settings, write_limit
from registry.api.openapi import route
from registry.api.schemas import Category, SenderCode, Strict
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


class SenderPublic(BaseModel):
    """A sender as its organization sees it."""

    code: str
    name: str
    category: str
    addresses: list[str]
    suspended_until: str | None = None


class SenderList(BaseModel):
    """The organization's senders."""

    senders: list[SenderPublic]


def _public(sender: Sender, addresses: list[str]) -> dict[str, Any]:
    return {
        "code": sender.code,
        "name": sender.name,
        "category": sender.category,
        "addresses": addresses,
        "suspended_until": iso(sender.suspended_until),
    }


@route(bp, "/senders", "GET", summary="List your senders", tag="senders", response=SenderList)
@limiter.limit(read_limit)
def list_senders() -> Any:
    """Return the caller's senders."""
    rows = services.list_senders(get_session(), caller().org_id)
    return jsonify({"senders": [_public(s, a) for s, a in rows]})


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
    for i, address in enumerate(data.addresses):
        # Texts from the registry's own number speak for the registry, and replies
        # to it for the holder: no sender may present it.
        if address.replace(" ", "").replace("-", "") == settings().sms_number:
            raise Conflict("that is the registry's own number", field=f"addresses.{i}")
    session = get_session()
    sender, addresses = services.create_sender(
        session, caller().org_id, data.code, data.name, data.category, data.addresses
    )
    session.commit()
    return jsonify(_public(sender, addresses)), 201
