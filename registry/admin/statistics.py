"""Statistics pages: SVG charts beside their tables, CSV downloads, the quarterly report."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import Response, abort, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy.orm import Session

from registry import csvcells
from registry.admin import bp, charts
from registry.admin.charts import Series
from registry.admin.session import record, staff_required
from registry.complaints import desk
from registry.db import get_session
from registry.stats import services as stats
from registry.timeutil import utcnow


@dataclass
class Dataset:
    """One statistic: a title, a table, and the chart drawn from the same rows.

    Built in the request's language; the CSV download builds it in English
    (``force_locale``), so that its headers and labels stay stable for the
    programs that read them.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    chart: Markup | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _label(slug: str, tier: str) -> str:
    """Name an organization's row; an agent's or carrier's own row says so (the merchant has the other)."""
    if tier == "agent":
        return _("%(slug)s (as agent)", slug=slug)
    if tier == "carrier":
        return _("%(slug)s (as carrier)", slug=slug)
    return slug


def _share(channel: str) -> str:
    """Name a percentage column: ``% voice`` in English (the CSV's header)."""
    name = _("voice") if channel == "voice" else _("sms")
    return _("%% %(channel)s", channel=name)


def _deny(reason: str) -> str:
    """Name a deny reason's column and series (the reason itself is the API's code)."""
    return _("deny: %(reason)s", reason=reason)


def _as(tier: str) -> str:
    return {"agent": _("agent"), "carrier": _("carrier")}.get(tier) or _("principal")


def _tiers() -> tuple[str, ...]:
    """Return the tiers the page groups by (``?tier=merchant|agent|carrier``; default all)."""
    tier = request.args.get("tier", "").strip()
    return (tier,) if tier in stats.TIERS else tuple(stats.TIERS)


def willingness(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Share of holders blocking each category, per channel (latest snapshot)."""
    w = stats.willingness(session, period[1] if period else None)
    share = [
        (
            cat,
            100 * voice / w.holders if w.holders else 0.0,
            100 * sms / w.holders if w.holders else 0.0,
        )
        for cat, voice, sms in w.rows
    ]
    rows = [
        [cat, voice, f"{pv:.1f}", sms, f"{ps:.1f}"]
        for (cat, voice, sms), (_cat, pv, ps) in zip(w.rows, share, strict=True)
    ]
    chart = charts.hbar(
        _("Share of holders blocking each category"),
        [c for c, _v, _s in share],
        [
            Series(_("voice"), [v for _c, v, _s in share]),
            Series(_("sms"), [s for _c, _v, s in share]),
        ],
        fmt=_pct,
        maximum=100,
    )
    note = (
        _(
            "Snapshot of %(day)s over %(holders)s holders; do-not-disturb on a channel blocks "
            "every category on it.",
            day=w.day,
            holders=f"{w.holders:,}",
        )
        if w.day
        else _("No snapshot yet: run `registry stats refresh`.")
    )
    return Dataset(
        "willingness", _("Willingness by category"),
        [_("category"), _("blocking voice"), _share("voice"), _("blocking sms"), _share("sms")],
        rows, chart, note,
    )  # fmt: skip


def dnd(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Do-not-disturb registrations per month, with the running total."""
    points = stats.dnd_series(session, *(period or (None, None)))
    rows = [
        [p.period, p.on_voice, p.on_sms, p.off_voice, p.off_sms, p.total_voice, p.total_sms]
        for p in points
    ]
    chart = (
        charts.line(
            _("Holders with do-not-disturb on, by month"),
            [p.period for p in points],
            [
                Series(_("voice"), [p.total_voice for p in points]),
                Series(_("sms"), [p.total_sms for p in points]),
            ],
        )
        if points
        else None
    )
    return Dataset(
        "dnd", _("Do-not-disturb registrations over time"),
        [_("month"), _("on voice"), _("on sms"), _("off voice"), _("off sms"), _("total voice"),
         _("total sms")],
        rows, chart, _("Turn-ons and turn-offs per month; totals are holders with DND on."),
    )  # fmt: skip


def checks(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Checks per organization, with deny rates by reason; agents' checks also as agent."""
    start, end = period or (None, None)
    per = stats.checks_by_org(session, start, end, tiers=_tiers())
    reasons = sorted({r for o in per for r in o.deny_reasons})
    rows = [
        [_label(o.slug, o.tier), o.total, o.allowed, o.denied, f"{100 * o.deny_rate:.1f}"]
        + [o.deny_reasons.get(r, 0) for r in reasons]
        + [_as(o.tier)]
        for o in per
    ]
    chart = (
        charts.stacked(
            _("Checks per organization: allowed, and denied by reason"),
            [_label(o.slug, o.tier) for o in per],
            [Series(_("allow"), [o.allowed for o in per])]
            + [Series(_deny(r), [o.deny_reasons.get(r, 0) for o in per]) for r in reasons],
        )
        if per
        else None
    )
    data = Dataset(
        "checks", _("Checks per organization"),
        [_("organization"), _("checks"), _("allowed"), _("denied"), _("deny %"),
         *(_deny(r) for r in reasons), _("as")],
        rows, chart,
        _("A check an agent made for another organization's sender counts for that organization "
          "(the principal) and again for the agent, in its row marked \"as agent\"."),
    )  # fmt: skip
    data.note += " " + _(
        "A check naming its calling address counts again for the carrier connecting that "
        'address, in its row marked "as carrier". Show one tier with ?tier=merchant, agent '
        "or carrier."
    )
    return data


def complaints_by_org(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Complaints per organization per quarter; those an agent checked for count for it too."""
    bounds = period or (None, None)
    tiers = _tiers()
    sources = {
        "merchant": desk.per_org_quarter, "agent": desk.per_agent_quarter,
        "carrier": desk.per_carrier_quarter,
    }  # fmt: skip
    per = {
        (slug, tier): counts
        for tier in tiers
        for slug, counts in sources[tier](session, *bounds).items()
    }
    quarters = sorted({q for counts in per.values() for q in counts})
    orgs = sorted(per, key=lambda k: (-sum(per[k].values()), k[0], k[1]))[:40]
    rows = [
        [_label(*k), *(per[k].get(q, 0) for q in quarters), sum(per[k].values()), _as(k[1])]
        for k in orgs
    ]
    chart = (
        charts.stacked(
            _("Complaints per organization, by quarter"),
            [_label(*k) for k in orgs],
            [Series(q, [per[k].get(q, 0) for k in orgs]) for q in quarters],
        )
        if orgs
        else None
    )
    data = Dataset(
        "complaints", _("Complaints per organization per quarter"),
        [_("organization"), *quarters, _("total"), _("as")], rows, chart,
        _("Complaints matched to a sender, by the quarter they were filed (UTC). When the check "
          "the verdict rests on was made by an agent for the sender, the complaint counts for the "
          "sender's organization and again for the agent, in its row marked \"as agent\"."),
    )  # fmt: skip
    data.note += " " + _(
        "A complaint about an address a carrier connects counts again for that carrier, in its "
        'row marked "as carrier". Show one tier with ?tier=merchant, agent or carrier.'
    )
    return data


def answer_times(session: Session, period: tuple[date, date] | None) -> Dataset:
    """Median (and spread of) the time to answer a complaint."""
    waited, waiting = desk.answer_days_list(session, *(period or (None, None)))
    med = stats.median(waited)
    buckets = [
        (_("< 1 day"), 0, 1),
        (_("1-3 days"), 1, 3),
        (_("3-7 days"), 3, 7),
        (_("7-14 days"), 7, 14),
        (_("> 14 days"), 14, 10**9),
    ]
    counts = [sum(1 for w in waited if lo <= w < hi) for _name, lo, hi in buckets]
    rows = [[label, n] for (label, _lo, _hi), n in zip(buckets, counts, strict=True)]
    rows.append([_("not answered yet"), waiting])
    chart = charts.hbar(
        _("Time to answer a complaint"),
        [label for label, _lo, _hi in buckets] + [_("not answered yet")],
        [Series(_("complaints"), [*counts, waiting])],
    )
    note = (
        _(
            "Median time to answer: %(days)s days over %(n)s answered complaints.",
            days=f"{med:.1f}",
            n=f"{len(waited):,}",
        )
        if med is not None
        else _("No complaint has been answered in this period.")
    )
    return Dataset(
        "answer_times", _("Time to answer a complaint"), [_("waited"), _("complaints")], rows,
        chart, note,
        {"median_days": med},
    )  # fmt: skip


DATASETS: dict[str, Callable[[Session, tuple[date, date] | None], Dataset]] = {
    "willingness": willingness,
    "dnd": dnd,
    "checks": checks,
    "complaints": complaints_by_org,
    "answer_times": answer_times,
}


class BadQuarter(ValueError):
    """The ``q`` filter does not name a quarter."""


def period_of_request() -> tuple[str, tuple[date, date] | None]:
    label = request.args.get("q", "").strip().upper()
    if not label:
        return "", None
    try:
        return label, stats.quarter_bounds(label)
    except ValueError:
        raise BadQuarter(label) from None


def quarter_error_page(exc: BadQuarter, template: str) -> Any:
    """Show the page's quarter filter with its error (a 400: the query was wrong)."""
    message = _("Write the quarter as a year, Q and 1 to 4, like 2026Q4.")
    return render_template(template, datasets=[], quarter=str(exc)[:6], quarter_error=message,
                           refreshed=None, period=None, generated=utcnow()), 400  # fmt: skip


@bp.get("/stats")
@staff_required
def stats_index() -> Any:
    """Show every statistic with its chart and table."""
    try:
        label, period = period_of_request()
    except BadQuarter as exc:
        return quarter_error_page(exc, "admin/stats.html")
    session = get_session()
    datasets = [build(session, period) for build in DATASETS.values()]
    return render_template(
        "admin/stats.html",
        datasets=datasets,
        quarter=label,
        refreshed=stats.last_refresh(session),
    )


@bp.get("/stats/<name>.csv")
@staff_required
def stats_csv(name: str) -> Any:
    """Download one statistic as CSV."""
    build = DATASETS.get(name)
    if build is None:
        abort(404)
    return csv_download(name, build)


def csv_download(
    name: str, build: Callable[[Session, tuple[date, date] | None], Dataset]
) -> Response:
    """Return one statistic as a CSV download, in English, and audit the export."""
    try:
        label, period = period_of_request()
    except BadQuarter:
        abort(400, _("Write the quarter as a year, Q and 1 to 4, like 2026Q4."))
    with force_locale("en"):  # the CSV's headers and labels stay English, whatever the page's
        data = build(get_session(), period)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csvcells.row(list(data.columns)))
    writer.writerows(csvcells.row(list(r)) for r in data.rows)  # names come from organizations
    record("stats.export", f"stats:{name}", quarter=label or None)
    get_session().commit()
    filename = f"anning-{name}{'-' + label if label else ''}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/reports/quarterly")
@staff_required
def quarterly_report() -> Any:
    """Show the quarterly report: every statistic for one quarter, made to print."""
    try:
        label, period = period_of_request()
    except BadQuarter as exc:
        return quarter_error_page(exc, "admin/report.html")
    if period is None:
        label = stats.quarter_of(utcnow().date())
        period = stats.quarter_bounds(label)
    session = get_session()
    datasets = [build(session, period) for build in DATASETS.values()]
    return render_template(
        "admin/report.html", datasets=datasets, quarter=label, period=period, generated=utcnow()
    )
