"""Warnings of senders jumping above their baseline; CSV for sector regulators, parsed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

from flask.testing import FlaskClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.checks.models import CheckLog
from tests.admin.test_reviews import CODE, make_quarter
from tests.conftest import Api
from tests.factories import HOLDER, World

DAY = datetime(2026, 6, 10, tzinfo=UTC).date()  # a week before 618


def _checks(session: Session, world: World, code: str, day: object, n: int) -> None:
    sender_id = world.sender_ids[code]
    org_id = world.org_ids["acme" if code == "acme-cards" else "shop"]
    at = datetime.combine(day, time(9), UTC)  # type: ignore[call-overload]
    row = {"phone": HOLDER, "sender_id": sender_id, "organization_id": org_id, "channel": "sms",
           "purpose": "marketing", "category": "finance", "decision": "deny",
           "reason": "no_consent", "at": at}  # fmt: skip
    rows = [{**row, "checked_at": at + timedelta(seconds=i)} for i in range(n)]
    if rows:
        session.execute(insert(CheckLog), rows)


def _baseline(session: Session, world: World, code: str, per_day: int) -> None:
    for back in range(1, 29):
        _checks(session, world, code, DAY - timedelta(days=back), per_day)


def test_a_sender_jumping_above_its_baseline_is_flagged(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    _baseline(session, world, "acme-cards", 10)
    _checks(session, world, "acme-cards", DAY, 150)  # 15 times its median of 10
    _baseline(session, world, "shop-deals", 100)
    _checks(session, world, "shop-deals", DAY, 150)  # 1.5 times: a busy sender, not a jump
    session.commit()
    page = as_officer.get(f"/admin/warnings?day={DAY.isoformat()}").get_data(as_text=True)
    assert "acme-cards" in page
    assert "15.0" in page
    assert "shop-deals" not in page
    assert "acme#measures" in page
    before = as_officer.get(f"/admin/warnings?day={(DAY - timedelta(days=1)).isoformat()}")
    assert "No sender jumped" in before.get_data(as_text=True)


def test_a_jump_below_the_floor_is_not_flagged(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    _checks(session, world, "acme-cards", DAY, 99)  # from nothing, but fewer than 100 checks
    session.commit()
    page = as_officer.get(f"/admin/warnings?day={DAY.isoformat()}").get_data(as_text=True)
    assert "acme-cards" not in page
    _checks(session, world, "acme-cards", DAY, 1)
    session.commit()
    page = as_officer.get(f"/admin/warnings?day={DAY.isoformat()}").get_data(as_text=True)
    assert "acme-cards" in page
    assert "from nothing" in page


def test_a_bad_day_is_a_form_error(as_viewer: FlaskClient) -> None:
    resp = as_viewer.get("/admin/warnings?day=2026-13-45")
    assert resp.status_code == 400
    assert "YYYY-MM-DD" in resp.get_data(as_text=True)


def test_industry_and_clue_csv_for_sector_regulators(
    as_viewer: FlaskClient, session: Session, acme: Api, world: World
) -> None:
    quarter = make_quarter(session, acme, world)
    resp = as_viewer.get(f"/admin/sharing/industries.csv?q={quarter}")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    by = {r["industry"]: r for r in rows}
    assert (by["finance"]["checks"], by["finance"]["verified_complaints"]) == ("4", "2")
    assert by["finance"]["verified_per_10k_checks"] == "5000.0"
    assert by["retail"]["verified_per_10k_checks"] == ""  # complaints without any check
    assert by["insurance"]["complaints"] == "0"
    clues = as_viewer.get(f"/admin/sharing/clues.csv?q={quarter}&industry=finance")
    lines = list(csv.DictReader(io.StringIO(clues.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(lines) == 2
    assert {r["credit_code"] for r in lines} == {CODE}
    assert {r["address"] for r in lines} == {"10690001"}
    assert all(r["verified"] == "yes" for r in lines)
    assert HOLDER not in clues.get_data(as_text=True)  # no holder numbers leave the registry
    every = as_viewer.get(f"/admin/sharing/clues.csv?q={quarter}").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(every.lstrip("\ufeff"))))) == 3
    actions = session.scalars(select(StaffAudit.action).order_by(StaffAudit.id)).all()
    assert list(actions[-3:]) == ["sharing.export"] * 3


def test_sharing_refuses_bad_quarters_and_industries(as_viewer: FlaskClient) -> None:
    assert as_viewer.get("/admin/sharing?q=2026Q7").status_code == 400
    assert as_viewer.get("/admin/sharing/industries.csv?q=nonsense").status_code == 400
    bad = as_viewer.get("/admin/sharing/clues.csv?q=2026Q1&industry=<b>")
    assert bad.status_code == 400
    assert "<b>" not in bad.get_data(as_text=True)
    assert as_viewer.get("/admin/sharing").status_code == 200
