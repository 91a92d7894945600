"""The JSON API, ``/api/v1``: one module per resource."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, current_app, g, request
from pydantic import BaseModel

from registry import copies
from registry.config import Settings
from registry.db import get_autocommit, get_reader
from registry.errors import Forbidden, Unauthorized, ValidationFailed
from registry.events.services import Actor
from registry.extensions import csrf
from registry.orgs.services import Caller, authenticate
from registry.senders.services import SenderRef

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer keys, not cookies: nothing for a forged form to ride on
M = TypeVar("M", bound=BaseModel)
PUBLIC = {"api.openapi_json", "api.docs"}


@bp.before_request
def _refuse_nul() -> None:
    # Ids and codes from the path or the query reach SQL; PostgreSQL refuses NUL in text.
    if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
        raise ValidationFailed("the URL must not contain NUL (U+0000) characters")


# The preflight checks and opt-outs take the caller from a per-process copy and
# verify it in the statement they run anyway (registry/copies.py).
CACHED = {"api.check", "api.check_batch", "api.create_optout"}


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC or request.endpoint is None:
        return
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
    key = header[7:].strip()
    if request.endpoint in CACHED:
        g.caller = copies.caller(get_autocommit() or get_reader(), key)
    else:
        g.caller = authenticate(get_reader(), key)
    g.api_key = key
    if g.caller.role == "gateway" and request.endpoint not in GATEWAY:
        # The gateway carries the holder's own voice; a key that could also
        # act as a sender would let one party speak on both sides.
        raise Forbidden("a gateway key is good only for the gateway endpoints")


# What a ``gateway`` key may call (each also requires that role itself).
GATEWAY = {"api.gateway_inbound_sms"}


def caller() -> Caller:
    """Return the organization this request authenticated as."""
    c: Caller = g.caller
    return c


def api_key() -> str:
    """Return the bearer key this request authenticated with."""
    key: str = g.api_key
    return key


def require_role(*roles: str) -> Caller:
    """Return the caller if its organization has one of ``roles``; else 403."""
    c = caller()
    if c.role not in roles:
        raise Forbidden(f"this needs an organization with role {' or '.join(roles)}")
    return c


def actor_for(sender: SenderRef) -> Actor:
    """Return who is acting: the sender's organization, through the caller if it is an agent."""
    c = caller()
    return Actor(f"org:{c.slug}", "api", org_id=sender.organization_id, agent_id=sender.agent_id)


def settings() -> Settings:
    """Return the registry settings."""
    s: Settings = current_app.config["REGISTRY"]
    return s


def write_limit() -> str:
    """Return the rate limit for every route that changes something (REGISTRY_RATELIMIT_WRITE)."""
    return settings().ratelimit_write


def read_limit() -> str:
    """Return the per-key rate limit for every route that reads (REGISTRY_RATELIMIT_READ)."""
    return settings().ratelimit_read


def body(model: type[M]) -> M:
    """Validate the JSON body against ``model`` (pydantic parses the JSON itself)."""
    return model.model_validate_json(request.get_data(cache=False) or b"")


from registry.api import (  # noqa: E402,F401  (routes register on import)
    changes,
    checks,
    consents,
    delegations,
    gateway,
    meta,
    numbers,
    optouts,
    scrubs,
    senders,
    sync,
    watchlist,
    webhooks,
)
