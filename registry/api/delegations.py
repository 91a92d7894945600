"""``/delegations``: outsourced contact, with the principal in control."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify
from pydantic import BaseModel, Field

from registry.api import body, bp, caller, read_limit, settings, write_limit
from registry.api.openapi import route
from registry.api.schemas import SenderCode, Strict, Time
from registry.db import get_session
from registry.extensions import limiter
from registry.orgs import delegations
from registry.timeutil import iso, to_utc

Scope = Literal["check", "optout", "consent", "changes"]


class DelegationIn(Strict):
    """Let an agent organization act for some of your senders."""

    agent: Annotated[str, Field(min_length=2, max_length=64, examples=["bluesky-cc"])]
    senders: Annotated[list[SenderCode], Field(min_length=1, max_length=1000)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4)]
    expires_at: Time | None = None


class DelegationOut(BaseModel):
    """A delegation, as its principal and agent see it."""

    id: int
    principal: str
    agent: str
    senders: list[str]
    scopes: list[str]
    expires_at: str | None = None
    revoked_at: str | None = None
    created_at: str
    active: bool
    state: Literal["active", "revoked", "expired"]


class DelegationList(BaseModel):
    """Delegations you granted or received."""

    delegations: list[DelegationOut]


def _out(item: dict[str, Any]) -> dict[str, Any]:
    return {
        **item,
        "expires_at": iso(item["expires_at"]),
        "revoked_at": iso(item["revoked_at"]),
        "created_at": iso(item["created_at"]),
    }


@route(bp, "/delegations", "POST", summary="Delegate senders to an agent", tag="delegations",
       body=DelegationIn, response=DelegationOut, status=201)  # fmt: skip
@limiter.limit(write_limit)
def create_delegation() -> Any:
    """Grant an agent the right to act for your senders within scopes."""
    data = body(DelegationIn)
    session = get_session()
    expires = to_utc(data.expires_at, settings().tz) if data.expires_at else None
    delegation = delegations.grant(
        session, caller().org_id, data.agent, list(data.senders), list(data.scopes), expires
    )
    session.commit()
    return jsonify(_out(delegations.describe(session, [delegation])[0])), 201


@route(
    bp,
    "/delegations",
    "GET",
    summary="Delegations you granted or received",
    tag="delegations",
    response=DelegationList,
)
@limiter.limit(read_limit)
def list_delegations() -> Any:
    """Return the caller's delegations, both directions."""
    session = get_session()
    items = delegations.describe(session, delegations.list_for(session, caller().org_id))
    return jsonify({"delegations": [_out(i) for i in items]})


@route(
    bp,
    "/delegations/<id:delegation_id>/revoke",
    "POST",
    summary="Revoke a delegation",
    tag="delegations",
    response=DelegationOut,
    responses={409: "The delegation is already revoked"},
)
@limiter.limit(write_limit)
def revoke_delegation(delegation_id: int) -> Any:
    """Revoke at once: the agent's next call is refused."""
    session = get_session()
    delegation = delegations.revoke(session, caller().org_id, delegation_id)
    session.commit()
    return jsonify(_out(delegations.describe(session, [delegation])[0]))
