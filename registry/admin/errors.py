"""The console's error pages: in the console's language, with its header and a way back.

Errors raised by a console view (or its blueprint's hooks) are answered here,
before the app-wide handlers of registry/api/errors.py; errors raised before
any console view runs (an address under ``/admin`` that matches no page, a
wrong method) reach the app-wide handlers, which render ``render_error`` for
``/admin`` paths (the app factory hands it to them), so they too are answered
by the console rather than the site.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from registry.admin import bp
from registry.admin.auth import console_labels
from registry.admin.session import load_staff
from registry.errors import RegistryError


def _message(status: int, csrf: bool = False) -> str:
    """Say what went wrong in the page's language (werkzeug's and the domain's are English)."""
    if csrf:
        return _("The form expired; please try again.")
    messages = {
        400: _("The console could not understand this request. Go back and try again."),
        403: _("This action needs the officer role."),
        404: _("There is no such page in the console."),
        405: _("This page cannot be used that way."),
        429: _("Too many requests in a short time. Wait a minute, then try again."),
    }
    return messages.get(status, messages[400])


def _page(status: int, message: str) -> str:
    # Loaded again: the request may have been refused before the blueprint's hooks ran
    # (CSRF, a NUL character); the header still shows who is signed in, and the way
    # back leads to the right place.
    load_staff()
    # Outside a console view (a routing error) the blueprint's context processor did not run.
    return render_template("admin/error.html", status=status, message=message, **console_labels())


def render_error(status: int, message: str | None = None) -> str:
    """Render the console's error page for ``status`` (the app's handlers call this for /admin)."""
    return _page(status, message or _message(status))


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
@bp.errorhandler(405)
@bp.errorhandler(429)
@bp.errorhandler(CSRFError)
def error_page(exc: HTTPException) -> Any:
    """Render the console's error page for an HTTP error of a console request."""
    status = exc.code or 400
    page = _page(status, _message(status, isinstance(exc, CSRFError)))
    response = exc.get_response()  # keeps the headers the error carries (Retry-After, Allow)
    response.set_data(page)
    response.content_type = "text/html; charset=utf-8"
    return response


@bp.errorhandler(RegistryError)
def domain_error_page(exc: RegistryError) -> Any:
    """Render the console's error page for a domain error a console view let through."""
    return _page(exc.status, _message(exc.status)), exc.status
