"""``/lookup``: who is calling me (号码标记), for phone apps with a key of their own (role ``lookup``).

The answer is the public part only (registry/lookup/services.py): the
registered sender, its organization, category and complaint count, and the
filed businesses using the number. It never says whether or what the
registry told any holder, and takes no holder's number.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify, request
from flask_limiter.util import get_remote_address
from pydantic import BaseModel

from registry.api import bp, require_role
from registry.api.openapi import route
from registry.config import current_settings
from registry.db import get_session
from registry.errors import ValidationFailed
from registry.extensions import limiter
from registry.lookup import services
from registry.lookup.services import Lookup


class LookupSender(BaseModel):
    """The registered sender that contacts people from the number."""

    code: str
    name: str
    category: str
    suspended: bool


class LookupOrganization(BaseModel):
    """The organization that answers for the sender (谁发送谁负责)."""

    slug: str
    name: str
    kind: str


class LookupBusiness(BaseModel):
    """An outsourced business filed (业务备案) with this number: the agent calling for the principal."""

    agent: LookupOrganization
    principal: LookupOrganization
    business_name: str
    business_type: str


class LookupOut(BaseModel):
    """Who answers for a calling number; ``registered`` false: no sender uses it."""

    number: str
    registered: bool
    message: str
    sender: LookupSender | None = None
    organization: LookupOrganization | None = None
    businesses: list[LookupBusiness] = []
    complaints: int | None = None
    lookup: Literal["public"] = "public"


def lookup_key_limit() -> str:
    """Return the per-key limit of lookups (REGISTRY_RATELIMIT_LOOKUP_KEY)."""
    return current_settings().ratelimit_lookup_key


def lookup_client_limit() -> str:
    """Return the per-client-address limit of lookups (REGISTRY_RATELIMIT_LOOKUP_CLIENT)."""
    return current_settings().ratelimit_lookup_client


def client_key() -> str:
    """Count per client address, whatever key it uses."""
    return f"lookup-ip:{get_remote_address()}"


def public(answer: Lookup) -> dict[str, Any]:
    """Return the public part of a lookup as the API's JSON (never a holder's records)."""
    c = answer.caller
    if c is None:
        return {
            "number": answer.number,
            "registered": False,
            "message": "not registered to any sender",
            "businesses": [],
            "lookup": "public",
        }
    org = {"slug": c.org_slug, "name": c.org_name, "kind": c.org_kind}
    return {
        "number": c.address,
        "registered": True,
        "message": f"registered to {c.sender_name} ({c.org_name})",
        "sender": {
            "code": c.sender_code,
            "name": c.sender_name,
            "category": c.category,
            "suspended": c.suspended,
        },
        "organization": org,
        "businesses": [
            {
                "agent": {"slug": b.agent_slug, "name": b.agent_name, "kind": b.agent_kind},
                "principal": {
                    "slug": b.principal_slug,
                    "name": b.principal_name,
                    "kind": c.org_kind,
                },
                "business_name": b.business_name,
                "business_type": b.business_type,
            }
            for b in c.businesses
        ],
        "complaints": c.complaints,
        "lookup": "public",
    }


@route(bp, "/lookup", "GET", summary="Who is calling: the sender behind a calling number",
       tag="lookup", response=LookupOut, query={"number": "string!"})  # fmt: skip
@limiter.limit(lookup_key_limit)
@limiter.limit(lookup_client_limit, key_func=client_key)
def lookup() -> Any:
    """Return the registered sender behind ``number`` (role ``lookup``); logged."""
    c = require_role("lookup")
    raw = request.args.get("number")
    if raw is None or not raw.strip():
        raise ValidationFailed("give the calling number as ?number=", field="number")
    session = get_session()
    answer = services.lookup_for_app(session, c.org_id, raw, current_settings().default_region)
    session.commit()
    return jsonify(public(answer))
