"""Flask extensions, created unbound here and attached in ``create_app``."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

from registry import ratelimit  # noqa: F401  (memory:// without a thread per hit)
from registry.db import Database


def rate_limit_key() -> str:
    """Limit API calls per key (its public prefix), everything else per client address."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer ann_"):
        parts = auth[7:].split("_")
        if len(parts) >= 3:
            return f"key:{parts[1]}"
    return f"ip:{get_remote_address()}"


def storage_uri() -> str:
    """Return the limiter storage from the settings (memory:// or redis://)."""
    return str(current_app.config["REGISTRY"].ratelimit_storage_url)


db = Database()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=rate_limit_key, headers_enabled=True)
