"""The JSON API, ``/api/v1``: one module per resource."""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, Request, g, request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from registry import copies
from registry.config import current_settings
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
# Callbacks that prove themselves (a signed dlr-url, a cloud's signature or token) and
# check it in the view: no key comes with them (registry/api/gateway.py).
SELF_AUTHENTICATED = {"api.gateway_kannel_dlr"} | {
    f"api.gateway_{cloud}_{kind}"
    for cloud in ("aliyun", "tencent", "huawei", "twilio")
    for kind in ("inbound", "dlr")
}


@bp.before_request
def _refuse_nul() -> None:
    # Ids and codes from the path or the query reach SQL; PostgreSQL refuses NUL in text.
    # (No query string, no arguments to parse: the check's requests.)
    req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup
    if "\x00" in req.path or (req.query_string and any("\x00" in v for v in req.args.values())):
        raise ValidationFailed("the URL must not contain NUL (U+0000) characters")


# The preflight checks and opt-outs take the caller from a per-process copy and
# verify it in the statement they run anyway (registry/copies.py).
CACHED = {"api.check", "api.check_text", "api.check_batch", "api.create_optout"}
# The one-line checks a dial plan calls (api/checks.py): some dial plans can set a
# URL's user and password but no header; the key may come as the password of
# HTTP Basic there, still in a header (never in the URL, which servers log).
BASIC = {"api.check_text"}


@bp.before_request
def _authenticate() -> None:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup
    endpoint = req.endpoint
    if endpoint is None or endpoint in PUBLIC or endpoint in SELF_AUTHENTICATED:
        return
    key = _bearer_key(req)
    if endpoint in CACHED:
        who = copies.caller(_primary_reads, key)
    else:
        who = authenticate(get_reader(), key)
    here = g._get_current_object()
    here.caller, here.api_key = who, key
    if who.role == "gateway" and endpoint not in GATEWAY:
        # The gateway carries the holder's own voice; a key that could also
        # act as a sender would let one party speak on both sides.
        raise Forbidden("a gateway key is good only for the gateway endpoints")
    if who.role == "reporter" and endpoint not in REPORTER:
        # A reporting platform files complaints for holders; it is no sender.
        raise Forbidden("a reporter key is good only for filing and reading its complaints")
    if who.role == "lookup" and endpoint not in LOOKUP:
        # A phone app's key answers "who is calling me" and nothing else: it
        # must never check, record or read anything about a holder.
        raise Forbidden("a lookup key is good only for GET /lookup")


def _primary_reads() -> Session:
    """Return the session a key's copy is read with when there is none (autocommit, else reader)."""
    return get_autocommit() or get_reader()


def _bearer_key(req: Request) -> str:
    header = req.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    basic = req.authorization if req.endpoint in BASIC | GATEWAY else None
    if basic is not None and basic.type == "basic":
        # The key is the password (any user name: the trunk's, Kannel's), or the user name alone.
        key = basic.password or basic.username or ""
        if key:
            return key
    if req.endpoint in BASIC | GATEWAY:
        raise Unauthorized(
            "send the API key as 'Authorization: Bearer <key>' or as the password of HTTP Basic"
        )
    raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")


# What a ``gateway`` key may call (each also requires that role itself). These also take
# the key as the password of HTTP basic auth: Kannel sends a URL's user:password so.
GATEWAY = {"api.gateway_inbound_sms", "api.gateway_kannel_inbound"}


# What a ``reporter`` key may call (registry/api/complaints.py).
REPORTER = {"api.file_complaint", "api.list_complaints", "api.get_complaint"}
# What a ``lookup`` key (a phone app) may call.
LOOKUP = {"api.lookup"}


def caller() -> Caller:
    """Return the organization this request authenticated as."""
    c: Caller = g._get_current_object().caller
    return c


def api_key() -> str:
    """Return the bearer key this request authenticated with."""
    key: str = g._get_current_object().api_key
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


def write_limit() -> str:
    """Return the rate limit for every route that changes something (REGISTRY_RATELIMIT_WRITE)."""
    return current_settings().ratelimit_write


def read_limit() -> str:
    """Return the per-key rate limit for every route that reads (REGISTRY_RATELIMIT_READ)."""
    return current_settings().ratelimit_read


def query(model: type[M]) -> M:
    """Validate the query string against ``model``, each parameter once, as a JSON body would be."""
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationFailed(
            f"give each query parameter once: {', '.join(repeated)}", field=repeated[0]
        )
    return model.model_validate_strings(request.args.to_dict())


def body(model: type[M]) -> M:
    """Validate the JSON body against ``model`` (pydantic parses the JSON itself)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    return model.model_validate_json(req.get_data(cache=False) or b"")


from registry.api import (  # noqa: E402,F401  (routes register on import)
    access,
    changes,
    checks,
    complaints,
    consents,
    delegations,
    gateway,
    lookup,
    meta,
    numbers,
    optouts,
    scrubs,
    senders,
    sync,
    watchlist,
    webhooks,
)
