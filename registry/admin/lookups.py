"""Lookups: how phone apps and holders use "who is calling me" (registry/lookup)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template

from registry.admin import bp
from registry.admin.session import staff_required
from registry.db import get_session
from registry.lookup import services as lookups
from registry.timeutil import utcnow

WINDOW_DAYS = 30


@bp.get("/lookups")
@staff_required
def lookups_index() -> Any:
    """Show lookups per app over the last 30 days, and the newest lookups."""
    session = get_session()
    since = utcnow() - timedelta(days=WINDOW_DAYS)
    return render_template(
        "admin/lookups.html",
        counts=lookups.counts(session, since),
        rows=lookups.recent(session),
        days=WINDOW_DAYS,
    )
