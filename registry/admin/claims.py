"""Claims: the "Y" and "START" replies senders forwarded, which activated nothing."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from registry.admin import bp
from registry.admin.session import staff_required
from registry.consent import claims
from registry.db import get_session
from registry.errors import NotFound
from registry.orgs import services as orgs


@bp.get("/claims")
@staff_required
def claims_index() -> Any:
    """List the newest claims, of every organization or of one (``?org=<slug>``)."""
    session = get_session()
    slug = (request.args.get("org") or "").strip()
    org_id = None
    if slug:
        try:
            org_id = orgs.get_org(session, slug).id
        except NotFound:
            return render_template("admin/claims.html", rows=[], slug=slug), 404
    rows = claims.recent(session, org_id)
    return render_template("admin/claims.html", rows=rows, slug=slug)
