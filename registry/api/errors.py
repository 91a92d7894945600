"""The one error envelope: ``{"error": {"code", "message", "details"}}`` (SPEC §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import (
    Flask,
    Response,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
)
from limits.errors import StorageError
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, InternalError, OperationalError
from werkzeug.exceptions import HTTPException

from registry.errors import RateLimited, RegistryError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    414: "too_large",
    415: "bad_request",
    422: "validation_error",
    429: "rate_limited",
    431: "too_large",
    500: "internal_error",
    503: "unavailable",
}


def envelope(
    code: str, message: str, status: int, details: list[dict[str, Any]] | None = None
) -> tuple[Response, int]:
    """Return the error response every API failure uses.

    On the plain-text forms (``/api/v1/….txt``, read by dial plans and SIP
    proxies that take the first line of a body) the same envelope is one line,
    ``ERROR <code> <message>[: <field>: <message>; …]``, with the same status.
    """
    if has_request_context() and _is_text():
        return _line(code, message, details or []), status
    return jsonify({"error": {"code": code, "message": message, "details": details or []}}), status


def _is_text() -> bool:
    return _is_api() and request.path.endswith(".txt")


def _line(code: str, message: str, details: list[dict[str, Any]]) -> Response:
    text = message
    # A detail that only repeats the message (a domain error naming its field) adds nothing.
    extra = [d for d in details if d.get("message") != message]
    if extra:
        text += ": " + "; ".join(f"{d.get('field', '')}: {d.get('message', '')}" for d in extra)
    # One line, whatever a message quotes from the input.
    text = " ".join(text.split())
    return Response(f"ERROR {code} {text}\n", mimetype="text/plain")


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Turn pydantic's errors into ``[{"field", "message"}]`` with dotted paths."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def from_validation(exc: ValidationError) -> tuple[Response, int]:
    """Map a pydantic error: unparseable JSON is 400, anything else 422."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return envelope("bad_request", "the body is not valid JSON", 400)
    if any(
        e["type"] == "json_type" or (e["type"] == "model_type" and not e["loc"]) for e in errors
    ):
        return envelope("validation_error", "the body must be a JSON object", 422)
    return envelope("validation_error", "the request is not valid", 422, validation_details(exc))


def _is_api() -> bool:
    return request.path.startswith("/api/")


# Pages for paths whose blueprint renders its own errors (the console): prefix -> renderer.
# Filled by the app factory, so this module never imports the console.
PageRenderer = Callable[[int, str | None], str]
_PAGES: dict[str, PageRenderer] = {}


def _page(status: int, message: str | None = None) -> tuple[str, int]:
    """Render an error as a page in the visitor's language, with the chrome and a way back.

    The console's paths get the console's page (errors raised before any console
    view ran, such as a routing 404); every other HTML path is the citizen site's.
    """
    for prefix, render in _PAGES.items():
        if request.path.startswith(prefix):
            return render(status, message), status
    return render_template("web/error.html", status=status, message=message), status


def register(app: Flask, pages: dict[str, PageRenderer] | None = None) -> None:
    """Install the handlers: domain errors, validation, HTTP errors, and the last resort.

    ``pages`` maps a path prefix to the renderer of its error pages (the console's).
    """
    _PAGES.update(pages or {})

    @app.errorhandler(RegistryError)
    def _domain(exc: RegistryError) -> Any:
        if _is_api():
            response, status = envelope(exc.code, exc.message, exc.status, exc.details)
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response, status
        return _page(exc.status)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Any:
        return from_validation(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        if not _is_api():
            # The limiter's own words (translated where the limit is declared); else the status says it.
            return _page(status, exc.description if status == 429 else None)
        code = HTTP_CODES.get(status, "bad_request")
        message = exc.description or code
        if status == 429:
            message = f"rate limit exceeded ({exc.description}); retry later"
        response, status = envelope(code, message, status)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response, status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(InternalError)
    def _database_down(exc: Exception) -> Any:
        # The database is unreachable or refused the work (down, restarting,
        # read-only, disk full, a backend killed): say so, and let the client
        # retry; nothing was committed. The pool
        # reconnects by itself once the database is back (pool_pre_ping).
        log.error("database unavailable on %s %s: %s", request.method, request.path, exc)
        response: Response | str
        if _is_api() or request.path in ("/readyz", "/healthz"):
            response, status = envelope(
                "unavailable", "the registry's database is unavailable; retry shortly", 503
            )
        else:
            response = make_response(*_page(503))
            status = 503
        if isinstance(response, Response):
            response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(StorageError)
    def _limits_down(exc: StorageError) -> Any:
        # The rate-limit storage (the machine's sqlite:// file, or Redis) failed:
        # a limit that cannot be counted is not waived; the client retries.
        log.error("rate-limit storage unavailable on %s %s: %s", request.method, request.path,
                  exc.storage_error)  # fmt: skip
        if _is_api():
            response, status = envelope(
                "unavailable", "the registry cannot count its rate limits; retry shortly", 503
            )
        else:
            response, status = make_response(*_page(503)), 503
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _is_api():
            return envelope("internal_error", "the registry failed to answer; try again", 500)
        return _page(500)
