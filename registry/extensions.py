"""Flask extensions, created unbound here and attached in ``create_app``."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, g
from flask.globals import request_ctx
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


class RequestLimiter(Limiter):
    """Flask-Limiter, reaching its per-request state through Flask's request proxy once.

    Flask-Limiter keeps a request's state (the limit it counted, for the
    ``X-RateLimit-*`` headers; its deductions) in a dict on the request
    context, which its ``context`` property reaches through Flask's
    ``request_ctx`` proxy twice (``hasattr``, then the attribute) each time it
    is asked: four times a request. On Python 3.11 each attribute read through a
    werkzeug proxy first builds and formats an ``AttributeError``; these were 8
    of a check's 19 proxy reads (docs/performance.md). Here the dict is read
    from the context object itself; when it is not there yet (the request's
    first ask, or a Flask-Limiter that keeps it elsewhere) Flask-Limiter's own
    property answers, so the state is always the one it keeps
    (tests/unit/test_extensions.py holds the two to the same object).
    """

    @property
    def context(self) -> Any:
        """Return this request's limiter state, as Flask-Limiter's ``context`` does."""
        ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]  # the proxy's object
        store = ctx.__dict__.get("_limiter_request_context")
        if store is None:
            return super().context
        return store[self]


limiter = RequestLimiter(key_func=rate_limit_key, headers_enabled=True)


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
