"""Flask extensions, created unbound here and attached in ``create_app``."""

from __future__ import annotations

from flask import Flask, Request, g
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

from registry import ratelimit  # noqa: F401  (registers the sqlite:// and memory:// stores)
from registry.config import current_settings
from registry.db import Database


def rate_limit_key() -> str:
    """Limit API calls per authenticated key (its public prefix), everything else per client address.

    Only a key the API has authenticated (``g.caller``, set by its
    ``before_request`` before any route's limit is counted) names a bucket: a
    made-up ``Authorization`` header must not buy a fresh budget, and the site
    and the console, which never authenticate keys, always count per address.
    """
    caller = g._get_current_object().get("caller")
    if caller is not None:
        return f"key:{caller.key_prefix}"
    return f"ip:{get_remote_address()}"


def storage_uri() -> str:
    """Return the limiter storage from the settings (sqlite://, redis:// or memory://)."""
    return str(current_settings().ratelimit_storage_url)


db = Database()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=rate_limit_key, headers_enabled=True)


class SiteSessions(SecureCookieSessionInterface):
    """The holder site's and console's signed cookie session, and none for the JSON API.

    ``/api/v1`` authenticates every request by its bearer key and keeps no
    state between requests; opening (verifying) and saving a cookie session
    there cost each check about 138k instructions for nothing. API requests
    get Flask's null session, which reads as empty and refuses writes.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Return the null session for the API, else the signed cookie's session."""
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def without_global_limit_pass(app: Flask, extension: Limiter) -> None:
    """Drop Flask-Limiter's ``before_request`` pass over default and application limits.

    The registry has neither: every limit is a route's (``@limiter.limit``),
    applied by its decorator, which also resolves the route's limits again. The
    global pass found nothing to apply and cost every request, of every
    endpoint, about 410k instructions (docs/performance.md).
    """
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [
        hook for hook in hooks if hook != extension._check_request_limit
    ]
