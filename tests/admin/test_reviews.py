"""The quarterly public review: drafted from the data, reviewed, published, public in two languages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import refresh
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.checks.models import CheckLog
from registry.complaints.models import Complaint
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.stats.services import quarter_bounds, quarter_of
from registry.timeutil import utcnow
from tests.admin.conftest import csrf, file_complaint, post_form
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

CODE = "91310000MA1FL0000N"


def last_quarter() -> tuple[str, datetime]:
    """Return the quarter before this one and a moment in its middle."""
    start, _ = quarter_bounds(quarter_of(utcnow().date()))
    label = quarter_of(start - timedelta(days=1))
    first, _ = quarter_bounds(label)
    return label, datetime.combine(first + timedelta(days=40), time(12), UTC)


def make_quarter(session: Session, acme: Api, world: World) -> str:
    """Acme: 4 checks, 2 verified complaints; shop: no check, 1 verified complaint — last quarter."""
    label, middle = last_quarter()
    org = session.get(Organization, world.org_ids["acme"])
    assert org is not None
    orgs.set_identity(session, org, CODE, "上海")
    session.commit()
    for phone in (HOLDER, HOLDER2, HOLDER, HOLDER2):
        assert acme.check(phone)["decision"] == "deny"  # no consent
    session.execute(update(CheckLog).values(checked_at=middle - timedelta(days=1)))
    session.commit()
    for phone, address in ((HOLDER, "10690001"), (HOLDER2, "10690001"), (HOLDER, "10690002")):
        file_complaint(session, phone, address=address, contacted_at=middle)
    session.execute(update(Complaint).values(created_at=middle + timedelta(hours=2)))
    session.commit()
    return label


@pytest.fixture
def quarter(session: Session, acme: Api, world: World) -> str:
    """Return last quarter's label, with its data made."""
    return make_quarter(session, acme, world)


def test_draft_review_then_publish(
    app: Flask, as_officer: FlaskClient, session: Session, quarter: str
) -> None:
    public = app.test_client()
    resp = post_form(as_officer, "/admin/reviews", "/admin/reviews",
                     {"quarter": quarter.lower(), "note": "Finance leads the complaints."})  # fmt: skip
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/admin/reviews/{quarter}")
    draft = as_officer.get(f"/admin/reviews/{quarter}").get_data(as_text=True)
    assert "not public yet" in draft
    assert "5,000.00" in draft  # finance: 2 verified / 4 checks * 10,000
    assert CODE in draft
    assert draft.index("Shop") < draft.index("Acme")  # no check at all comes first
    assert "no checks" in draft
    assert "<svg" in draft
    assert public.get(f"/reviews/{quarter}").status_code == 404  # a draft is not public
    assert quarter not in public.get("/reviews").get_data(as_text=True)
    published = post_form(as_officer, f"/admin/reviews/{quarter}",
                          f"/admin/reviews/{quarter}/publish", {})  # fmt: skip
    assert published.status_code == 302
    page = public.get(f"/reviews/{quarter}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Finance leads the complaints." in text
    assert CODE in text
    assert "Banking, loans and credit cards" in text
    assert "<svg" in text
    assert f"/reviews/{quarter}" in public.get("/reviews").get_data(as_text=True)
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    zh = public.get(f"/reviews/{quarter}", headers={"Accept-Language": "zh-CN"})
    assert "季度" in zh.get_data(as_text=True)
    actions = session.scalars(select(StaffAudit.action).order_by(StaffAudit.id)).all()
    assert list(actions[-2:]) == ["review.draft", "review.publish"]


def test_published_review_does_not_change(
    as_officer: FlaskClient, session: Session, quarter: str
) -> None:
    post_form(as_officer, "/admin/reviews", "/admin/reviews", {"quarter": quarter})
    post_form(as_officer, f"/admin/reviews/{quarter}", f"/admin/reviews/{quarter}/publish", {})
    again = post_form(as_officer, "/admin/reviews", "/admin/reviews", {"quarter": quarter})
    assert again.status_code == 409
    assert "is published and cannot change" in again.get_data(as_text=True)
    twice = post_form(as_officer, f"/admin/reviews/{quarter}",
                      f"/admin/reviews/{quarter}/publish", {})  # fmt: skip
    assert twice.status_code == 302
    assert "already published" in as_officer.get(f"/admin/reviews/{quarter}").get_data(as_text=True)


def test_the_running_quarter_can_be_drafted_but_not_published(
    app: Flask, as_officer: FlaskClient, world: World
) -> None:
    now = quarter_of(utcnow().date())
    assert post_form(as_officer, "/admin/reviews", "/admin/reviews",
                     {"quarter": now}).status_code == 302  # fmt: skip
    post_form(as_officer, f"/admin/reviews/{now}", f"/admin/reviews/{now}/publish", {})
    assert "has not ended" in as_officer.get(f"/admin/reviews/{now}").get_data(as_text=True)
    assert app.test_client().get(f"/reviews/{now}").status_code == 404


def test_bad_quarters_are_form_errors(as_officer: FlaskClient, world: World) -> None:
    for value in ("", "2026Q5", "Q3 2026", "1999Q1", "2026Q3<script>"):
        resp = post_form(as_officer, "/admin/reviews", "/admin/reviews", {"quarter": value})
        assert resp.status_code == 422, value
        assert "<script>" not in resp.get_data(as_text=True)
    assert as_officer.get("/admin/reviews/2026Q9").status_code == 404


def test_viewer_reads_but_does_not_draft_or_publish(
    as_viewer: FlaskClient, session: Session, quarter: str
) -> None:
    token = csrf(as_viewer, "/admin/reviews")
    assert as_viewer.post("/admin/reviews", data={"csrf_token": token,
                                                  "quarter": quarter}).status_code == 403  # fmt: skip
    assert as_viewer.post(f"/admin/reviews/{quarter}/publish",
                          data={"csrf_token": token}).status_code == 403  # fmt: skip
    assert "Draft the review" not in as_viewer.get("/admin/reviews").get_data(as_text=True)
