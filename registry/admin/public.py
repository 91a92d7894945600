"""The public pages outside the site's flows: the sanction register ``/sanctions`` and the favicon."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
)
from flask_babel import gettext as _

from registry.admin import security_headers
from registry.admin.reviews import context
from registry.db import get_session
from registry.sanctions import exports, review
from registry.sanctions.services import PUBLIC_KINDS, credit_list, public_register
from registry.timeutil import utcnow

bp = Blueprint("sanctions", __name__)
bp.after_request(security_headers)


@bp.get("/sanctions")
def register() -> Any:
    """List the measures of the past year and the credit list, with reasons and dates."""
    now = utcnow()
    session = get_session()
    response = render_template(
        "admin/public_sanctions.html",
        entries=public_register(session, now, kinds=PUBLIC_KINDS),
        listed=credit_list(session, now),
        now=now,
    )
    return response, 200, PUBLIC


PUBLIC = {"Cache-Control": "public, max-age=60", "Access-Control-Allow-Origin": "*"}


@bp.get("/sanctions.json")
def register_json() -> Any:
    """The register and the credit list as JSON (docs/enforcement.md)."""
    now = utcnow()
    session = get_session()
    data = exports.as_json(
        public_register(session, now, kinds=PUBLIC_KINDS), credit_list(session, now), now
    )
    return jsonify(data), 200, PUBLIC


@bp.get("/sanctions.csv")
def register_csv() -> Any:
    """The register's measures as CSV."""
    text = exports.as_csv(public_register(get_session(), utcnow(), kinds=PUBLIC_KINDS))
    return _csv(text, "anning-sanctions.csv")


@bp.get("/sanctions/credit-list.csv")
def credit_list_csv() -> Any:
    """The credit list as CSV."""
    return _csv(exports.listed_csv(credit_list(get_session(), utcnow())), "anning-credit-list.csv")


@bp.get("/sanctions.atom")
def register_atom() -> Any:
    """The register's measures as an Atom feed, newest first."""
    now = utcnow()
    entries = public_register(get_session(), now, kinds=PUBLIC_KINDS)
    body = exports.as_atom(
        entries, request.url_root.rstrip("/"), now, _("Anning sanction register")
    )
    return Response(body, 200, PUBLIC, mimetype="application/atom+xml")


def _csv(text: str, name: str) -> Any:
    headers = {**PUBLIC, "Content-Disposition": f"attachment; filename={name}"}
    # A BOM so that spreadsheet programs read the Chinese names as UTF-8.
    return Response("\ufeff" + text, 200, headers, mimetype="text/csv")


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Serve the icon browsers ask for at the root (static/favicon.ico; favicon.svg beside it)."""
    folder = current_app.static_folder or "static"
    return send_from_directory(folder, "favicon.ico", mimetype="image/x-icon", max_age=86400)


@bp.get("/reviews")
def reviews() -> Any:
    """List the published quarterly reviews."""
    rows = review.listing(get_session(), published=True)
    return render_template("admin/public_reviews.html", rows=rows), 200, PUBLIC


@bp.get("/reviews/<quarter>")
def review_page(quarter: str) -> Any:
    """One published quarterly review: the worst industries and companies, with charts."""
    row = review.get(get_session(), quarter, published=True)
    return render_template("admin/public_review.html", **context(row)), 200, PUBLIC
