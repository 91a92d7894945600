"""The staff session: a signed cookie of its own, role checks, and the audit helper."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, redirect, request, url_for

from registry.admin.accounts import get_staff
from registry.admin.models import StaffUser
from registry.audit import services as audit
from registry.config import current_settings
from registry.db import get_session
from registry.tokens import InvalidToken, Signer

COOKIE = "anning_staff"
MAX_AGE = 8 * 3600  # one working day; then sign in again
F = TypeVar("F", bound=Callable[..., Any])


def _signer() -> Signer:
    return Signer(current_settings().secret_key, "staff-session", max_age=MAX_AGE)


def refuse_nul() -> None:
    """Refuse a request with a NUL character anywhere in its path, query or form.

    No person types one, and PostgreSQL refuses it in text: checked once here
    rather than in every form and lookup.
    """
    values = [request.path, *request.args.values(), *request.form.values()]
    if any("\x00" in v for v in values):
        abort(400, "the request contains a NUL character")


def load_staff() -> None:
    """Put the signed-in staff account (or None) on ``g.staff``."""
    g.staff = None
    token = request.cookies.get(COOKIE)
    if not token:
        return
    try:
        payload = _signer().loads(token)
        staff_id, epoch = int(payload["id"]), int(payload["e"])
    except (InvalidToken, KeyError, TypeError, ValueError):
        return
    user = get_staff(get_session(), staff_id)
    if user is not None and user.session_epoch == epoch:
        g.staff = user


def start(response: Response, user: StaffUser) -> Response:
    """Set the staff cookie on ``response``."""
    response.set_cookie(
        COOKIE,
        _signer().dumps({"id": user.id, "e": user.session_epoch}),
        max_age=MAX_AGE,
        path="/admin",
        httponly=True,
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE", False)),
        samesite="Strict",
    )
    return response


def end(response: Response) -> Response:
    """Remove the staff cookie."""
    response.delete_cookie(COOKIE, path="/admin")
    return response


def current() -> StaffUser:
    """Return the signed-in staff account (views behind ``staff_required`` only)."""
    return cast(StaffUser, g.staff)


_CONSOLE_PATH = re.compile(r"/admin(?:[/?#][!-\[\]-~]*)?")


def safe_next(target: str | None) -> str:
    """Return ``target`` if it is a console path on this site, else the dashboard.

    Only printable ASCII without spaces or backslashes passes: a CR or LF would
    split the Location header, and a backslash is a slash to some browsers.
    """
    if target and _CONSOLE_PATH.fullmatch(target):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
            return target
    return url_for("admin.dashboard")


def staff_required(view: F) -> F:
    """Send anonymous visitors to the sign-in page."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("staff") is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def officer_required(view: F) -> F:
    """Let only officers act; viewers get 403."""

    @functools.wraps(view)
    @staff_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current().role != "officer":
            abort(403, "this action needs the officer role")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def record(action: str, subject: str | None = None, **data: Any) -> None:
    """Record a staff action in the audit trail (committed with the action)."""
    audit.record(
        get_session(), g.get("staff"), action, subject, data or None, ip=request.remote_addr
    )
