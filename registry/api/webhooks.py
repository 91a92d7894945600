"""``/webhooks``: your changes pushed to your URL, signed (see docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from registry.api import body, bp, caller, read_limit, write_limit
from registry.api.openapi import route
from registry.api.schemas import Strict
from registry.config import current_settings
from registry.db import get_session
from registry.extensions import limiter
from registry.sync import webhooks


class WebhookIn(Strict):
    """Where to deliver.

    The URL's length is judged as sent, as the schema states it (the fuzz lane
    sent 2,001 characters, one a leading newline, that stripping had let
    through); surrounding whitespace is stripped after, here, for every view.
    """

    url: Annotated[
        str,
        StringConstraints(strip_whitespace=False),
        Field(min_length=1, max_length=2000, examples=["https://example.com/anning"]),
        AfterValidator(str.strip),
    ]


class WebhookPublic(BaseModel):
    """A hook, its delivery cursor and health; ``disabled_reason`` says why it stopped."""

    id: int
    url: str
    status: str
    disabled_reason: str | None
    cursor: int
    failures: int
    last_error: str | None
    next_attempt_at: str | None
    last_delivery_at: str | None
    created_at: str


class WebhookCreated(WebhookPublic):
    """The new hook with its signing secret: shown this once, keep it."""

    secret: str


class WebhookList(BaseModel):
    """Your hooks."""

    webhooks: list[WebhookPublic]


@route(bp, "/webhooks", "POST", summary="Add a webhook", tag="sync", body=WebhookIn,
       response=WebhookCreated, status=201)  # fmt: skip
@limiter.limit(write_limit)
def create_webhook() -> Any:
    """Register a URL; changes from now on are delivered there by the worker."""
    data = body(WebhookIn)
    session = get_session()
    hook, secret = webhooks.create(
        session,
        caller().org_id,
        data.url,
        allow_private=current_settings().webhook_allow_private,
    )
    session.commit()
    return jsonify(webhooks.public(hook) | {"secret": secret}), 201


@route(bp, "/webhooks", "GET", summary="List your webhooks", tag="sync", response=WebhookList)
@limiter.limit(read_limit)
def list_webhooks() -> Any:
    """Return your hooks with their health."""
    hooks = webhooks.list_hooks(get_session(), caller().org_id)
    return jsonify({"webhooks": [webhooks.public(h) for h in hooks]})


class WebhookDeleted(BaseModel):
    """How many hooks were removed."""

    deleted: int


@route(bp, "/webhooks", "DELETE", summary="Remove your webhooks for a URL", tag="sync",
       body=WebhookIn, response=WebhookDeleted)  # fmt: skip
@limiter.limit(write_limit)
def delete_webhooks_by_url() -> Any:
    """Stop deliveries to a URL (``DELETE /webhooks/<id>`` removes one hook by id)."""
    data = body(WebhookIn)
    session = get_session()
    deleted = webhooks.delete_by_url(session, caller().org_id, data.url)
    session.commit()
    return jsonify({"deleted": deleted})


@route(bp, "/webhooks/<int:hook_id>", "DELETE", summary="Remove a webhook", tag="sync", status=204)
@limiter.limit(write_limit)
def delete_webhook(hook_id: int) -> Any:
    """Stop deliveries to a hook."""
    session = get_session()
    webhooks.delete_hook(session, caller().org_id, hook_id)
    session.commit()
    return "", 204
