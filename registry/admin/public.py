"""The public pages outside the site's flows: the sanction register ``/sanctions`` and the favicon."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, send_from_directory

from registry.admin import security_headers
from registry.db import get_session
from registry.sanctions.services import public_register
from registry.timeutil import utcnow

bp = Blueprint("sanctions", __name__)
bp.after_request(security_headers)


@bp.get("/sanctions")
def register() -> Any:
    """List suspended organizations and senders, with reasons and dates."""
    now = utcnow()
    response = render_template(
        "admin/public_sanctions.html", entries=public_register(get_session(), now), now=now
    )
    return response, 200, {"Cache-Control": "public, max-age=60"}


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Serve the icon browsers ask for at the root (static/favicon.ico; favicon.svg beside it)."""
    folder = current_app.static_folder or "static"
    return send_from_directory(folder, "favicon.ico", mimetype="image/x-icon", max_age=86400)
