"""Warnings (senders jumping above their baseline) and the exports for sector regulators."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from flask import Response, render_template, request
from flask_babel import gettext as _

from registry.admin import bp
from registry.admin.session import record, staff_required
from registry.config import current_settings
from registry.db import get_session
from registry.errors import RegistryError
from registry.sanctions import sharing, warnings
from registry.senders.models import CATEGORIES
from registry.stats.services import quarter_bounds, quarter_of
from registry.timeutil import utcnow


@bp.get("/warnings")
@staff_required
def warnings_index() -> Any:
    """List senders whose checks or complaints on a day jump far above their own baseline."""
    raw = request.args.get("day", "").strip()
    error = None
    day = utcnow().date()
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            error = _("Write the day as YYYY-MM-DD.")
    spikes = [] if error else warnings.spikes(get_session(), day)
    return render_template(
        "admin/warnings.html", spikes=spikes, day=day, raw=raw, error=error, w=warnings
    ), (400 if error else 200)


def _quarter() -> tuple[str, str | None]:
    label = request.args.get("q", "").strip().upper() or _last_quarter()
    try:
        quarter_bounds(label)
    except ValueError:
        return label[:6], _("Write the quarter as a year, Q and 1 to 4, like 2026Q4.")
    return label, None


def _last_quarter() -> str:
    start, _end = quarter_bounds(quarter_of(utcnow().date()))
    return quarter_of(date.fromordinal(start.toordinal() - 1))


@bp.get("/sharing")
@staff_required
def sharing_index() -> Any:
    """The exports for sector regulators: choose a quarter and an industry."""
    label, error = _quarter()
    return render_template(
        "admin/sharing.html", quarter=label, error=error, categories=CATEGORIES
    ), (400 if error else 200)


def _csv(fields: tuple[str, ...], rows: list[dict[str, Any]], name: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v)
                for k, v in row.items()
            }
        )
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/sharing/industries.csv")
@staff_required
def sharing_industries() -> Any:
    """Willingness, checks and complaints per industry for one quarter (CSV)."""
    label, error = _quarter()
    if error:
        return sharing_index()
    rows = sharing.industries(get_session(), current_settings(), label)
    record("sharing.export", "sharing:industries", quarter=label)
    get_session().commit()
    return _csv(sharing.INDUSTRY_FIELDS, rows, f"anning-industries-{label}.csv")


@bp.get("/sharing/clues.csv")
@staff_required
def sharing_clues() -> Any:
    """The quarter's complaint clues, of one industry or all (CSV)."""
    label, error = _quarter()
    if error:
        return sharing_index()
    industry = request.args.get("industry", "").strip() or None
    try:
        rows = sharing.clues(get_session(), current_settings(), label, industry)
    except RegistryError:
        return render_template(
            "admin/sharing.html", quarter=label, categories=CATEGORIES,
            error=_("Choose an industry from the list."),
        ), 400  # fmt: skip
    record("sharing.export", "sharing:clues", quarter=label, industry=industry)
    get_session().commit()
    suffix = f"-{industry}" if industry else ""
    return _csv(sharing.CLUE_FIELDS, rows, f"anning-clues-{label}{suffix}.csv")
