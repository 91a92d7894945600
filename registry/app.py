"""The app factory: settings, extensions, blueprints, error handlers, commands.

Kept out of ``registry/__init__.py``, which every ``import registry.<domain>``
runs: importing a domain service must not load every view.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, g
from flask_babel import get_locale

from registry import edge, metrics
from registry.admin import bp as admin_bp
from registry.admin.errors import render_error
from registry.admin.public import bp as sanctions_bp
from registry.api import bp as api_bp
from registry.api.errors import register as register_api_errors
from registry.api.openapi import IdConverter, IntIdConverter
from registry.cli import register as register_cli
from registry.config import current_settings, instance_path, load_settings
from registry.extensions import (
    SiteSessions,
    babel,
    csrf,
    db,
    limiter,
    without_global_limit_pass,
)
from registry.i18n import select_locale
from registry.layout import shipped
from registry.sms import services as sms
from registry.web import bp as web_bp

log = logging.getLogger("registry.sms")


class Registry(Flask):
    """Flask, telling a plain function from a coroutine function by its code's flags.

    Flask's ``ensure_sync`` wraps ``async def`` views and hooks; it asks
    ``inspect.iscoroutinefunction`` of each function every time it calls one,
    about ten times a request. A function or bound method whose code is not a
    coroutine's is returned here after one flag test; anything else (a
    ``functools.partial``, a function marked a coroutine function by
    ``inspect.markcoroutinefunction``) is Flask's to judge.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``func`` when it is plainly synchronous, else what Flask's ``ensure_sync`` does."""
        code = getattr(func, "__code__", None)
        if (
            code is not None
            and not code.co_flags & inspect.CO_COROUTINE
            and getattr(func, "_is_coroutine_marker", None) is None
        ):
            return func
        return super().ensure_sync(func)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the registry app: settings, extensions, blueprints, error handlers, commands."""
    environ = dict(test_config["ENVIRON"]) if test_config and "ENVIRON" in test_config else None
    # ``INSTANCE_PATH`` (tests, or a factory call such as gunicorn's
    # ``registry:create_app({"INSTANCE_PATH": ...})``) moves the instance folder.
    instance = (test_config.get("INSTANCE_PATH") if test_config else None) or instance_path(environ)
    app = Registry(
        "registry",
        instance_path=instance,
        instance_relative_config=True,
        static_folder=shipped("static"),
    )
    settings = load_settings(app.instance_path, environ)
    app.config.update(settings.as_flask_config())
    app.config.update(
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_NAME="anning_holder",
        SESSION_COOKIE_SAMESITE="Lax",
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        # A failing storage raises limits' StorageError: a 503, not a 500 (api/errors.py).
        RATELIMIT_STORAGE_OPTIONS={"wrap_exceptions": True},
        RATELIMIT_HEADERS_ENABLED=True,
        BABEL_DEFAULT_LOCALE="zh_CN",
    )
    app.url_map.converters["id"] = IdConverter
    # Every <int:...> in a URL is an INTEGER record id: bounded, so none overflows (404).
    app.url_map.converters["int"] = IntIdConverter
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep fields in the documented order
    if test_config:
        app.config.update(
            {k: v for k, v in test_config.items() if k not in ("ENVIRON", "INSTANCE_PATH")}
        )
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    """Attach the database, CSRF, Babel, the rate limiter and metrics."""
    edge.init_app(app)  # first: oversize requests are refused before anything else runs
    db.init_app(app)
    app.session_interface = SiteSessions()
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    limiter.init_app(app)
    without_global_limit_pass(app, limiter)
    metrics.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Mount the API, the citizen site, the regulator console and the health endpoints."""
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(sanctions_bp)
    app.after_request(deliver_own_messages)


def deliver_own_messages(response: Response) -> Response:
    """Deliver the texts this request queued (a holder's sign-in code) once it has committed.

    Only its own: other people's messages are the worker's. A failure never
    fails the request; the message stays queued with its error and is retried.
    """
    session = g._get_current_object().get("db_session")
    ids = sms.queued_by(session) if session is not None else []
    if ids:
        try:
            sms.deliver(session, current_settings(), limit=len(ids), ids=ids)
        except Exception:  # delivery is retried later; the request already succeeded
            log.exception("SMS delivery after request failed; it will be retried")
    return response


def register_errorhandlers(app: Flask) -> None:
    """Send every API error through the one envelope; pages for the site and the console."""
    register_api_errors(app, pages={"/admin": render_error})


def register_commands(app: Flask) -> None:
    """Add the ``registry`` command groups."""
    register_cli(app)
