"""What sits in front of the app: the proxy it trusts for the client's address, and the
sizes of a request it refuses itself.

gunicorn refuses what is beyond its own bounds before the app is called (see
``registry/cli/serve.py``); the bounds here are lower, so that every request
the app can see and still refuses for its size is answered like any other
error: in the JSON envelope on the API, as a page on the site.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from registry.config import current_settings

MAX_TARGET = 4096  # bytes of the request target (path and query)
MAX_HEADER = 8192  # bytes of one header field, name and value
FORWARDING = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def init_app(app: Flask) -> None:
    """Trust the configured proxies' ``X-Forwarded-For``, and refuse oversize requests first."""
    proxies = current_settings(app).trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies)  # type: ignore[method-assign]
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversize)


def refuse_oversize() -> None:
    """Answer 414 for a request target over 4 KB and 431 for a header field over 8 KB."""
    environ = request._get_current_object().environ  # type: ignore[attr-defined]
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # as sent (gunicorn, werkzeug)
    size = len(target) if target else len(environ["PATH_INFO"]) + len(environ["QUERY_STRING"])
    if size > MAX_TARGET:
        raise RequestURITooLarge(f"the request target is over {MAX_TARGET} bytes")
    for key, value in environ.items():
        if key.startswith("HTTP_") and len(key) - 3 + len(value) > MAX_HEADER:  # "Name: value"
            name = key[5:].replace("_", "-").title()
            raise RequestHeaderFieldsTooLarge(f"the {name} header is over {MAX_HEADER} bytes")


def local_client() -> bool:
    """Tell whether the request comes from this machine (loopback), not through a proxy.

    Without trusted proxies the address is the socket's peer, and a request
    carrying forwarding headers came through a proxy on this machine on behalf
    of someone else: it is not local. With ``REGISTRY_TRUSTED_PROXIES`` the
    address is the one those proxies forwarded.
    """
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    if current_settings().trusted_proxies:
        return loopback
    return loopback and not any(name in request.environ for name in FORWARDING)
