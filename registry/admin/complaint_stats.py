"""Complaint handling statistics in the console: charts, tables, CSV (registry/complaints/stats.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from flask import abort, render_template
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from registry.admin import bp, charts
from registry.admin.charts import Series
from registry.admin.session import staff_required
from registry.admin.statistics import (
    BadQuarter,
    Dataset,
    csv_download,
    period_of_request,
    quarter_error_page,
)
from registry.complaints import stats as cstats
from registry.db import get_session


def _h(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _handling(name: str, title: str, key: str, rows: list[cstats.Handling]) -> Dataset:
    chart = (
        charts.hbar(
            title,
            [r.key for r in rows[:20]],
            [
                Series(_("hours to answer"), [r.answer_hours or 0 for r in rows[:20]]),
                Series(_("hours to close"), [r.close_hours or 0 for r in rows[:20]]),
            ],
        )
        if rows
        else None
    )
    return Dataset(
        name, title,
        [key, _("complaints"), _("hours to acknowledge"), _("hours to answer"),
         _("hours to close"), _("overdue"), _("late answers")],
        [[r.key, r.complaints, _h(r.ack_hours), _h(r.answer_hours), _h(r.close_hours),
          r.overdue, r.late] for r in rows],
        chart,
        _("Average hours from filing (or forwarding, for an organization's answer) to each step; "
          "duplicates are not counted."),
    )  # fmt: skip


def handling_org(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Handling per organization routed to."""
    rows = cstats.handling(session, "complaint_org", *(period or (None, None)))
    return _handling("handling_org", _("Complaint handling per organization"),
                     _("organization"), rows)  # fmt: skip


def handling_sector(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Handling per sector desk."""
    rows = cstats.handling(session, "complaint_sector", *(period or (None, None)))
    return _handling("handling_sector", _("Complaint handling per sector"), _("sector"), rows)


def handling_intake(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Handling per channel of intake."""
    rows = cstats.handling(session, "complaint_intake", *(period or (None, None)))
    return _handling("handling_intake", _("Complaint handling per channel of intake"),
                     _("intake"), rows)  # fmt: skip


def _rates(name: str, title: str, key: str, rows: list[cstats.Rate]) -> Dataset:
    chart = (
        charts.hbar(title, [r.key for r in rows[:20]],
                    [Series(_("per 10,000 checks"), [r.per_10k or 0 for r in rows[:20]])])
        if rows
        else None
    )  # fmt: skip
    return Dataset(
        name, title, [key, _("complaints"), _("checks"), _("per 10,000 checks")],
        [[r.key, r.complaints, r.checks, "—" if r.per_10k is None else f"{r.per_10k:.2f}"]
         for r in rows],
        chart,
        _("Checks come from the rollups refreshed by registry stats refresh."),
    )  # fmt: skip


def rates_org(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Complaints per 10,000 checks per organization."""
    return _rates("rates_org", _("Complaints per 10,000 checks, per organization"),
                  _("organization"), cstats.rates_by_org(session, *(period or (None, None))))  # fmt: skip


def rates_category(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Complaints per 10,000 checks per industry."""
    return _rates("rates_category", _("Complaints per 10,000 checks, per industry"),
                  _("category"), cstats.rates_by_category(session, *(period or (None, None))))  # fmt: skip


def overdue(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Overdue and late answers counted against each organization."""
    rows = cstats.overdue_by_org(session, *(period or (None, None)))
    chart = (
        charts.hbar(_("Overdue and late answers per organization"), [k for k, _o, _l in rows[:20]],
                    [Series(_("overdue"), [o for _k, o, _l in rows[:20]]),
                     Series(_("late answers"), [lt for _k, _o, lt in rows[:20]])])
        if rows
        else None
    )  # fmt: skip
    return Dataset("overdue", _("Overdue and late answers per organization"),
                   [_("organization"), _("overdue"), _("late answers")],
                   [list(r) for r in rows], chart,
                   _("An answer is overdue from the working day after its deadline (China's "
                     "public holidays and make-up working days counted)."))  # fmt: skip


COMPLAINT_DATASETS: dict[str, Callable[[Session, tuple[date, date] | None], Dataset]] = {
    "handling_org": handling_org,
    "handling_sector": handling_sector,
    "handling_intake": handling_intake,
    "rates_org": rates_org,
    "rates_category": rates_category,
    "overdue": overdue,
}


@bp.get("/complaints/stats")
@staff_required
def complaint_stats() -> Any:
    """Show the complaint handling statistics with charts and tables."""
    try:
        label, period = period_of_request()
    except BadQuarter as exc:
        return quarter_error_page(exc, "admin/complaint_stats.html")
    session = get_session()
    datasets = [build(session, period) for build in COMPLAINT_DATASETS.values()]
    return render_template("admin/complaint_stats.html", datasets=datasets, quarter=label)


@bp.get("/complaints/stats/<name>.csv")
@staff_required
def complaint_stats_csv(name: str) -> Any:
    """Download one complaint handling statistic as CSV."""
    build = COMPLAINT_DATASETS.get(name)
    if build is None:
        abort(404)
    return csv_download(name, build)
