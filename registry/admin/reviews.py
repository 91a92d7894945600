"""The quarterly public review in the console: draft a quarter, read the draft, publish it.

The public pages (``/reviews``) are in ``registry.admin.public``; both render
the same partial, ``admin/_review.html``, with the charts drawn here.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from registry.admin import bp, charts
from registry.admin.forms import ConfirmForm, ReviewForm
from registry.admin.session import current, officer_required, record, staff_required
from registry.config import current_settings
from registry.db import get_session
from registry.errors import RegistryError
from registry.labels import CATEGORIES as CATEGORY_LABELS
from registry.sanctions import review
from registry.timeutil import utcnow


def industry_label(category: str) -> str:
    """Return the industry's name in the reader's language."""
    label = CATEGORY_LABELS.get(category)
    return str(label) if label is not None else category


def rate_text(value: float | None) -> str:
    """Return a rate per 10,000 checks as text ('no checks' when there were none)."""
    return _("no checks") if value is None else f"{value:,.2f}"


def review_charts(data: dict[str, Any]) -> dict[str, Markup | None]:
    """Return the review's two charts: industries and companies by verified complaints per 10,000."""
    industries = [r for r in data["industries"] if r["checks"] or r["verified"]]
    companies = data["companies"][:10]
    out: dict[str, Markup | None] = {"industries": None, "companies": None}
    if industries:
        out["industries"] = charts.hbar(
            _("Verified complaints per 10,000 checks, by industry"),
            [industry_label(r["category"]) for r in industries],
            [charts.Series(_("per 10,000 checks"), [r["per_10k"] or 0 for r in industries])],
            left=210,
        )
    if companies:
        out["companies"] = charts.hbar(
            _("Verified complaints per 10,000 checks, by company"),
            [r["organization"] for r in companies],
            [charts.Series(_("per 10,000 checks"), [r["per_10k"] or 0 for r in companies])],
        )
    return out


def context(row: Any) -> dict[str, Any]:
    """Return what ``admin/_review.html`` needs for one review."""
    data = review.data_of(row)
    return {
        "review": row,
        "data": data,
        "charts": review_charts(data),
        "industry_label": industry_label,
        "rate_text": rate_text,
    }


@bp.get("/reviews")
@staff_required
def reviews_index() -> Any:
    """List the drafted and published reviews; officers draft a quarter here."""
    return _index(ReviewForm())


def _index(form: ReviewForm, status: int = 200) -> Any:
    rows = review.listing(get_session())
    return render_template("admin/reviews.html", rows=rows, form=form), status


@bp.post("/reviews")
@officer_required
def review_draft() -> Any:
    """Draft (or redraft) a quarter's review from the data as it is now."""
    form = ReviewForm()
    if not form.validate_on_submit():
        return _index(form, 422)
    session = get_session()
    quarter = (form.quarter.data or "").strip().upper()
    try:
        row = review.draft(
            session, current_settings(), quarter, form.note.data, current().email, utcnow()
        )
    except RegistryError as exc:
        session.rollback()
        form.quarter.errors = [*form.quarter.errors, exc.message]
        return _index(form, 409 if exc.status == 409 else 422)
    record("review.draft", f"review:{row.quarter}")
    session.commit()
    flash(_("Drafted the review of %(quarter)s. Read it, then publish it.", quarter=row.quarter))
    return redirect(url_for("admin.review_detail", quarter=row.quarter))


@bp.get("/reviews/<quarter>")
@staff_required
def review_detail(quarter: str) -> Any:
    """Show a review as the public will see it, with the publish button while it is a draft."""
    row = review.get(get_session(), quarter)
    return render_template("admin/review.html", confirm=ConfirmForm(), **context(row))


@bp.post("/reviews/<quarter>/publish")
@officer_required
def review_publish(quarter: str) -> Any:
    """Publish a drafted review: it appears at /reviews and never changes."""
    session = get_session()
    if ConfirmForm().validate_on_submit():
        try:
            row = review.publish(session, quarter, current().email, utcnow())
        except RegistryError as exc:
            session.rollback()
            flash(exc.message, "error")
        else:
            record("review.publish", f"review:{row.quarter}")
            session.commit()
            flash(_("Published the review of %(quarter)s.", quarter=row.quarter))
    return redirect(url_for("admin.review_detail", quarter=quarter.upper()))
