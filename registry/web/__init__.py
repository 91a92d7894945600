"""The citizen self-service site and the health endpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import text

from registry import labels
from registry.config import current_settings
from registry.db import get_session

bp = Blueprint("web", __name__)

# The site loads nothing from elsewhere and runs no inline script or style.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.record_once
def _labels(state: Any) -> None:
    labels.init_app(state.app)


@bp.app_context_processor
def _operator() -> dict[str, Any]:
    """Give every page (site and console) who runs the registry, for the footer (_footer.html)."""
    settings = current_settings()
    return {
        "operator": {
            "name": settings.operator_name,
            "contact": settings.operator_contact,
            "privacy_url": settings.privacy_url or url_for("web.privacy"),
        }
    }


@bp.app_errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Any:
    if request.path.startswith("/api/"):
        raise exc
    message = _(
        "This form has expired or was not sent from this site. Go back, reload the page and try again."
    )
    return render_template("web/error.html", status=400, message=message), 400


@bp.get("/healthz")
def healthz() -> Any:
    """Say the process is up (no database access; also the benchmark's trivial endpoint)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Say whether the database answers."""
    get_session().execute(text("SELECT 1"))
    return jsonify({"status": "ready"})


@bp.get("/")
def index() -> Any:
    """Show the front page."""
    return render_template("index.html")


@bp.get("/privacy")
def privacy() -> Any:
    """Say what the registry records about a number, why, who sees it, and for how long."""
    return render_template("web/privacy.html")


from registry.web import views  # noqa: E402,F401  (routes register on import)
