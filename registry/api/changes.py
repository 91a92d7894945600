"""``/changes``: the organization's change feed, ordered and gap-free (SPEC §4 Sync)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from pydantic import BaseModel

from registry.api import bp, caller, read_limit
from registry.api.openapi import route
from registry.db import get_session
from registry.extensions import limiter
from registry.sync import feed


class Change(BaseModel):
    """One change. ``sender``, ``channels``, ``category``, ``consent_id`` and the
    attribution (``organization``: the principal; ``agent``: who acted for it)
    appear on changes of your senders; ``preferences`` on a watched number's
    ``preferences.changed``; ``disconnected_at`` and ``carrier`` (who reported it) on
    ``number.disconnected`` and ``number.disconnection_retracted``, the latter with
    ``retracted_by`` (``carrier`` or ``regulator``); ``organization`` and ``sanction``
    (``phone`` null) on ``organization.sanctioned`` and ``organization.sanction_lifted``,
    which every carrier reads; ``complaint`` (its ``id``, ``reference``, ``role``, ``type``,
    ``address``, ``channel``, ``contacted_at``, ``verdict``, ``due_on``) on
    ``complaint.forwarded``, read only by the organization it was forwarded to."""

    seq: int
    type: str
    phone: str | None
    state: str | None
    at: str
    sender: str | None = None
    channels: list[str] | None = None
    category: str | None = None
    consent_id: int | None = None
    organization: str | None = None
    agent: str | None = None
    preferences: dict[str, Any] | None = None
    disconnected_at: str | None = None
    carrier: str | None = None
    retracted_by: str | None = None
    sanction: dict[str, Any] | None = None
    complaint: dict[str, Any] | None = None


class ChangePage(BaseModel):
    """A page of changes; resume with ``after=next`` (at once while ``has_more``)."""

    changes: list[Change]
    next: int
    has_more: bool


@route(bp, "/changes", "GET", summary="Read your change feed", tag="sync", response=ChangePage,
       query={"after": "integer", "limit": "integer"})  # fmt: skip
@limiter.limit(read_limit)
def changes() -> Any:
    """Return the changes after ``after`` (default 0) in your scope, up to ``limit`` (≤ 1000)."""
    after, limit = feed.parse_cursor(request.args.get("after"), request.args.get("limit"))
    session = get_session()
    # Number what has committed since the worker's last run, unless someone else
    # is doing it right now: a reader never waits for the sequencer.
    if feed.sequence(session, wait=False):
        session.commit()
    page = feed.read(session, caller().org_id, after, limit)
    # json.dumps without jsonify's key sorting: a page is up to 1,000 items.
    body = json.dumps(
        {"changes": page.changes, "next": page.next, "has_more": page.has_more},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Response(body, mimetype="application/json")
