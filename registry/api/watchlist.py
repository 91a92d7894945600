"""``/watchlist``: numbers whose preference and disconnection changes you follow."""

from __future__ import annotations

from typing import Annotated, Any

from flask import jsonify
from pydantic import BaseModel, Field

from registry import phones
from registry.api import body, bp, caller, write_limit
from registry.api.gates import cold_gate
from registry.api.openapi import route
from registry.api.schemas import ErrorItem, Strict
from registry.config import current_settings
from registry.db import get_session
from registry.errors import TooLarge
from registry.extensions import limiter
from registry.sync import watchlist


class WatchIn(Strict):
    """Numbers you already hold, up to 10,000 a call (any form a check accepts).

    Watching a number you have a relationship with (a consent its holder
    confirmed or an opt-out, with one of your senders, or a check of your own)
    is free; every other new entry is charged to your organization's
    cold-check limit (REGISTRY_RATELIMIT_COLD_CHECK), and the whole call is
    refused with 429 ``rate_limited`` when that is spent. The feed then shows a
    watched number's changes made from the moment its watch began, never
    earlier ones."""

    phones: Annotated[list[Any], Field(min_length=1, max_length=1_000_000)]


class Rejected(BaseModel):
    """An entry that is not a number."""

    index: int
    error: ErrorItem


class WatchOut(BaseModel):
    """How many numbers changed, how many you watch now (a count: never the numbers)."""

    changed: int
    watching: int
    rejected: list[Rejected]
    charged: int | None = Field(
        default=None,
        description="Adding: the new entries on numbers you have no record with, "
        "counted against your cold-check limit.",
    )


def _parse(data: WatchIn) -> tuple[list[str], list[dict[str, Any]]]:
    if len(data.phones) > watchlist.MAX_PHONES:
        raise TooLarge(f"at most {watchlist.MAX_PHONES} numbers a call", field="phones")
    region = current_settings().default_region
    good, rejected = [], []
    for index, raw in enumerate(data.phones):
        try:
            if not isinstance(raw, str | int):
                raise phones.InvalidPhone("not a phone number")
            good.append(phones.to_e164(str(raw), region))
        except phones.InvalidPhone as exc:
            rejected.append(
                {"index": index, "error": {"code": "invalid_phone", "message": str(exc)}}
            )
    return good, rejected


@route(
    bp,
    "/watchlist",
    "POST",
    summary="Watch numbers (strangers' numbers are charged as cold checks)",
    tag="sync",
    body=WatchIn,
    response=WatchOut,
)
@limiter.limit(write_limit)
def watch() -> Any:
    """Add numbers to your watchlist; invalid entries are rejected by index, strangers charged."""
    good, rejected = _parse(body(WatchIn))
    session, org = get_session(), caller().org_id
    gate = cold_gate("watchlist", "too many watched numbers your organization has no record with")
    changed, charged = watchlist.watch(session, org, good, gate)
    session.commit()
    watching = watchlist.count(session, org)
    return jsonify(
        {"changed": changed, "watching": watching, "rejected": rejected, "charged": charged}
    )


@route(bp, "/watchlist", "DELETE", summary="Stop watching numbers", tag="sync", body=WatchIn,
       response=WatchOut)  # fmt: skip
@limiter.limit(write_limit)
def unwatch() -> Any:
    """Remove numbers from your watchlist."""
    good, rejected = _parse(body(WatchIn))
    session, org = get_session(), caller().org_id
    changed = watchlist.unwatch(session, org, good)
    session.commit()
    return jsonify(
        {"changed": changed, "watching": watchlist.count(session, org), "rejected": rejected}
    )
