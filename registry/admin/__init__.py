"""The regulator console, ``/admin``: complaints, sanctions, statistics, organizations, delegations.

Staff sign in with a password and a TOTP code; their identity travels in a
cookie of its own (``anning_staff``, path ``/admin``), never in the holders'
session. Views parse, call one service, record an audit entry, render.
"""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("admin", __name__, url_prefix="/admin")

# The console renders charts as inline SVG and needs no script at all.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(response: Response) -> Response:
    """Add the headers every console and public sanctions page carries."""
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers.setdefault("Cache-Control", "no-store")
    return response


bp.after_request(security_headers)

import registry.admin.measures  # noqa: E402  (issue 17: the range of measures)
import registry.admin.outreach  # noqa: E402  (issue 17: warnings, sharing)
import registry.admin.reviews  # noqa: E402,F401  (issue 17: the quarterly public review)
from registry.admin import (  # noqa: E402,F401  (routes register on import)
    auth,
    claims,
    complaint_stats,
    delegations,
    desk,
    directory,
    enforcement,
    errors,
    lookups,
    numbers,
    statistics,
)
