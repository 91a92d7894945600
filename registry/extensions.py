"""Flask extensions, created unbound here and attached in ``create_app``."""

from __future__ import annotations

from flask import current_app, g
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

from registry import ratelimit  # noqa: F401  (registers the sqlite:// and memory:// stores)
from registry.db import Database


def rate_limit_key() -> str:
    """Limit API calls per authenticated key (its public prefix), everything else per client address.

    Only a key the API has authenticated (``g.caller``, set by its
    ``before_request`` before any route's limit is counted) names a bucket: a
    made-up ``Authorization`` header must not buy a fresh budget, and the site
    and the console, which never authenticate keys, always count per address.
    """
    caller = g.get("caller")
    if caller is not None:
        return f"key:{caller.key_prefix}"
    return f"ip:{get_remote_address()}"


def storage_uri() -> str:
    """Return the limiter storage from the settings (sqlite://, redis:// or memory://)."""
    return str(current_app.config["REGISTRY"].ratelimit_storage_url)


db = Database()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=rate_limit_key, headers_enabled=True)
