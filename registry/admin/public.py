"""The public sanction register, ``/sanctions``: no sign-in, nothing personal."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

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
