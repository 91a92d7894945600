"""``/delegations``: outsourced contact, with the principal in control."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify
from pydantic import BaseModel, Field

from registry.api import body, bp, caller, read_limit, write_limit
from registry.api.openapi import route
from registry.api.schemas import SenderCode, Strict, Time
from registry.config import current_settings
from registry.db import get_session
from registry.extensions import limiter
from registry.orgs import delegations, filings
from registry.orgs.models import BUSINESS_TYPES
from registry.timeutil import iso, to_utc

Scope = Literal["check", "optout", "consent", "changes"]
BusinessType = Literal[BUSINESS_TYPES]  # type: ignore[valid-type]


class FilingIn(Strict):
    """业务备案: the outsourced business, filed by the principal (required for call centers and SMS ports)."""

    business_name: Annotated[str, Field(min_length=1, max_length=200, examples=["credit cards"])]
    business_type: BusinessType
    addresses: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=100, examples=[["+862160000004"]]),
    ]
    targets: Annotated[
        str, Field(min_length=1, max_length=1000, examples=["existing card holders"])
    ]
    content: Annotated[str, Field(min_length=1, max_length=2000, examples=["card upgrade offers"])]
    contact_name: Annotated[str, Field(min_length=1, max_length=100)]
    contact_phone: Annotated[str, Field(min_length=1, max_length=64, examples=["+8613100001234"])]

    def filing(self) -> filings.Filing:
        """Return the filing for the service."""
        return filings.Filing(
            self.business_name, self.business_type, list(self.addresses), self.targets,
            self.content, self.contact_name, self.contact_phone,
        )  # fmt: skip


class FilingOut(BaseModel):
    """A delegation's business filing; addresses as registered, the contact phone in E.164."""

    business_name: str
    business_type: str
    addresses: list[str]
    targets: str
    content: str
    contact_name: str
    contact_phone: str
    filed_at: str
    updated_at: str


class DelegationIn(Strict):
    """Let an agent organization act for some of your senders."""

    agent: Annotated[str, Field(min_length=2, max_length=64, examples=["bluesky-cc"])]
    senders: Annotated[list[SenderCode], Field(min_length=1, max_length=1000)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4)]
    expires_at: Time | None = None
    filing: FilingIn | None = None


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
    agent_kind: str
    filing: FilingOut | None = None
    filing_required: bool


class DelegationList(BaseModel):
    """Delegations you granted or received."""

    delegations: list[DelegationOut]


def _out(item: dict[str, Any]) -> dict[str, Any]:
    filing = item["filing"]
    if filing is not None:
        filing = {
            **filing,
            "filed_at": iso(filing["filed_at"]),
            "updated_at": iso(filing["updated_at"]),
        }
    return {
        **item,
        "filing": filing,
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
    expires = to_utc(data.expires_at, current_settings().tz) if data.expires_at else None
    delegation = delegations.grant(
        session, caller().org_id, data.agent, list(data.senders), list(data.scopes), expires,
        data.filing.filing() if data.filing else None, current_settings().default_region,
    )  # fmt: skip
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


@route(
    bp,
    "/delegations/<id:delegation_id>",
    "GET",
    summary="One delegation with its business filing (principal or agent)",
    tag="delegations",
    response=DelegationOut,
)
@limiter.limit(read_limit)
def get_delegation(delegation_id: int) -> Any:
    """Return a delegation to its principal or its agent; anyone else is refused."""
    session = get_session()
    delegation = filings.readable(session, caller().org_id, delegation_id)
    return jsonify(_out(delegations.describe(session, [delegation])[0]))


@route(
    bp,
    "/delegations/<id:delegation_id>/filing",
    "PUT",
    summary="File or alter the delegation's business (业务备案), as its principal",
    tag="delegations",
    body=FilingIn,
    response=DelegationOut,
    responses={409: "The delegation is revoked"},
)
@limiter.limit(write_limit)
def file_business(delegation_id: int) -> Any:
    """Replace the delegation's filing; only the principal may (the agent reads it)."""
    data = body(FilingIn)
    session = get_session()
    delegation = filings.file(
        session, caller().org_id, delegation_id, data.filing(), current_settings().default_region
    )
    session.commit()
    return jsonify(_out(delegations.describe(session, [delegation])[0]))
