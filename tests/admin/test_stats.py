"""Statistics: rollups refreshed by a command, charts with tables, CSV, the quarterly report."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from registry.stats import services as stats
from registry.subscribers import services as subscribers
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

H3 = "+8613700137000"


def _arrange(session: Session, acme: Api) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True)
    subscribers.set_preferences(session, HOLDER2, blocked_categories=["finance", "insurance"])
    subscribers.set_preferences(session, H3, dnd_voice=True, dnd_sms=True)
    subscribers.set_preferences(session, H3, dnd_voice=False)  # one turn-off
    session.commit()
    for phone in (HOLDER, HOLDER2, H3):
        acme.check(phone)
    acme.check(HOLDER2, channel="voice")


def _refresh(app: Flask) -> str:
    result = CliRunner().invoke(app.cli, ["stats", "refresh"])
    assert result.exit_code == 0, result.output
    return result.output


def test_refresh_counts_and_is_incremental(
    app: Flask, session: Session, acme: Api, world: World
) -> None:
    _arrange(session, acme)
    assert "read 4 new checks, 3 holders" in _refresh(app)
    assert "read 0 new checks" in _refresh(app)  # nothing new: nothing counted twice
    acme.check(HOLDER)
    assert "read 1 new checks" in _refresh(app)
    [acme_row] = [o for o in stats.checks_by_org(session) if o.slug == "acme"]
    assert acme_row.total == 5
    assert acme_row.deny_reasons == {"category_blocked": 2, "dnd": 3}
    w = stats.willingness(session)
    table = {cat: (voice, sms) for cat, voice, sms in w.rows}
    assert w.holders == 3
    assert table["finance"] == (1, 3)  # HOLDER2 blocks it everywhere; DND on sms for HOLDER and H3
    assert table["retail"] == (0, 2)
    assert table["dnd"] == (0, 2)
    [point] = stats.dnd_series(session)
    assert (point.on_voice, point.on_sms, point.off_voice) == (1, 2, 1)
    assert (point.total_voice, point.total_sms) == (0, 2)


def test_stats_page_has_charts_tables_and_csv(
    app: Flask, as_viewer: FlaskClient, session: Session, acme: Api
) -> None:
    _arrange(session, acme)
    _refresh(app)
    page = as_viewer.get("/admin/stats")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count("<svg") >= 4  # willingness, DND, checks, answer times (no complaints yet)
    assert "<script" not in html
    assert "Willingness by category" in html
    resp = as_viewer.get("/admin/stats/willingness.csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["category", "blocking voice", "% voice", "blocking sms", "% sms"]
    assert ["finance", "1", "33.3", "3", "100.0"] in rows
    checks = list(
        csv.reader(io.StringIO(as_viewer.get("/admin/stats/checks.csv").get_data(as_text=True)))
    )
    assert checks[1][:4] == ["acme", "4", "0", "4"]


def test_quarterly_report_and_bad_input(
    app: Flask, as_viewer: FlaskClient, session: Session, acme: Api
) -> None:
    _arrange(session, acme)
    _refresh(app)
    quarter = stats.quarter_of(utcnow().date())
    page = as_viewer.get(f"/admin/reports/quarterly?q={quarter}")
    assert page.status_code == 200
    assert quarter in page.get_data(as_text=True)
    assert as_viewer.get("/admin/reports/quarterly?q=2026Q5").status_code == 400
    assert as_viewer.get("/admin/stats?q=%00%ff").status_code == 400
    assert as_viewer.get("/admin/stats/nothing.csv").status_code == 404
    empty = as_viewer.get("/admin/reports/quarterly?q=2001Q1")
    assert empty.status_code == 200


def test_quarter_bounds() -> None:
    from datetime import date

    assert stats.quarter_bounds("2026Q4") == (date(2026, 10, 1), date(2027, 1, 1))
    assert stats.quarter_bounds("2026q1") == (date(2026, 1, 1), date(2026, 4, 1))
    assert stats.median([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert stats.median([]) is None


def _total(session: Session, slug: str = "acme") -> int:
    return sum(o.total for o in stats.checks_by_org(session) if o.slug == slug)


def test_refresh_counts_a_row_that_commits_after_a_later_one(session: Session, acme: Api) -> None:
    """A check log id below the watermark that becomes visible later is counted once, later."""
    from sqlalchemy import insert, select

    from registry.checks.models import CheckLog

    ids = [acme.check(HOLDER)["check_id"] for _ in range(3)]
    assert len(ids) == 3
    rows = session.execute(select(CheckLog.__table__).order_by(CheckLog.id)).mappings().all()
    middle = dict(rows[-2])
    # The middle row is "still inside its transaction": invisible to the refresh.
    session.execute(CheckLog.__table__.delete().where(CheckLog.__table__.c.id == middle["id"]))
    session.commit()
    now = utcnow()
    assert stats.refresh(session, now).checks_read == 2
    assert _total(session) == 2
    session.execute(insert(CheckLog.__table__).values(**middle))  # ... and now it commits
    session.commit()
    assert stats.refresh(session, now).checks_read == 1
    assert stats.refresh(session, now).checks_read == 0  # counted once, not again
    assert _total(session) == 3


def test_refresh_drops_runs_that_never_fill(session: Session, acme: Api) -> None:
    """Ids of a rolled-back transaction never appear: their run is dropped after the horizon."""
    from datetime import timedelta

    from sqlalchemy import func, select

    from registry.checks.models import CheckLog
    from registry.stats.models import StatGap

    for _ in range(3):
        acme.check(HOLDER)
    first, middle, _ = session.scalars(select(CheckLog.id).order_by(CheckLog.id)).all()[-3:]
    # On PostgreSQL other tests' rolled-back transactions used ids below ours: not counted here.
    ours = select(func.count()).select_from(StatGap).where(StatGap.low >= first)
    session.execute(CheckLog.__table__.delete().where(CheckLog.__table__.c.id == middle))
    session.commit()
    now = utcnow()
    stats.refresh(session, now)
    assert session.scalar(ours) == 1
    stats.refresh(session, now + timedelta(minutes=5))
    assert session.scalar(ours) == 1  # still waited for
    stats.refresh(session, now + stats.GAP_HORIZON + timedelta(seconds=1))
    assert session.scalar(select(func.count()).select_from(StatGap)) == 0
    assert _total(session) == 2


@pytest.mark.live
def test_refresh_counts_a_check_committed_late_on_postgresql(
    app: Flask, session: Session, acme: Api
) -> None:
    """A real open transaction holding a lower id: counted once it commits, never skipped."""
    from sqlalchemy import insert, select

    from registry.checks.models import CheckLog
    from registry.extensions import db

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    acme.check(HOLDER)
    first = dict(session.execute(select(CheckLog.__table__)).mappings().one())
    del first["id"]
    with db.engine.connect() as other:
        late = other.begin()
        other.execute(insert(CheckLog.__table__).values(**first))  # takes the next id, uncommitted
        acme.check(HOLDER)  # a higher id, committed
        assert stats.refresh(session, utcnow()).checks_read == 2
        session.commit()
        late.commit()
    assert stats.refresh(session, utcnow()).checks_read == 1
    session.commit()
    assert _total(session) == 3


def test_statistics_group_by_tier(
    app: Flask, as_viewer: FlaskClient, session: Session, acme: Api, carrier: Api
) -> None:
    """Issue 15: checks and complaints per merchant, agent and carrier (the one connecting ``from``)."""
    from datetime import timedelta

    from registry.complaints import services as complaints

    resp = carrier.post(
        "/connections", {"organization": "acme", "kind": "sms_port", "addresses": ["10690001"]}
    )
    assert resp.status_code == 201
    acme.check(HOLDER, **{"from": "10690001"})
    acme.check(HOLDER2)  # no ``from``: the merchant's row only
    complaints.file_complaint(
        session, HOLDER, "10690001", "sms", utcnow() - timedelta(minutes=5), "spam"
    )
    session.commit()
    _refresh(app)
    tiers = {
        (o.slug, o.tier): o.total for o in stats.checks_by_org(session, tiers=tuple(stats.TIERS))
    }
    assert tiers == {("acme", "merchant"): 2, ("carrier", "carrier"): 1}

    def table(name: str, tier: str) -> list[list[str]]:
        resp = as_viewer.get(f"/admin/stats/{name}.csv?tier={tier}")
        assert resp.status_code == 200
        return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))[1:]

    assert [(r[0], r[1], r[-1]) for r in table("checks", "carrier")] == [
        ("carrier (as carrier)", "1", "carrier")
    ]
    assert [r[0] for r in table("checks", "merchant")] == ["acme"]
    assert [(r[0], r[-1]) for r in table("complaints", "carrier")] == [
        ("carrier (as carrier)", "carrier")
    ]
    assert table("complaints", "agent") == []
    html = as_viewer.get("/admin/stats?tier=carrier").get_data(as_text=True)
    assert '<option value="carrier" selected>' in html
