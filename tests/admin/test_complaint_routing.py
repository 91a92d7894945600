"""The console's side of complaint routing: telephone entry, sector desks, the final reply."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.admin import accounts
from registry.audit.models import StaffAudit
from registry.complaints import routing
from registry.complaints.models import Complaint, ComplaintRoute
from registry.config import Settings
from registry.sms.models import SmsMessage
from registry.stats import services as stats
from registry.timeutil import utcnow
from tests.admin.conftest import PASSWORD, Staff, post_form, sign_in
from tests.conftest import Api
from tests.factories import HOLDER, World


@pytest.fixture
def settings(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Calling hours all day: these tests are not about the window."""
    s = replace(app.config["REGISTRY"], calling_hours=(time(0), time(23, 59, 59)))
    monkeypatch.setitem(app.config, "REGISTRY", s)
    return s


def _desk(session: Session, email: str, sector: str | None) -> Staff:
    new = accounts.create_staff(session, email, PASSWORD, "officer", sector)
    session.commit()
    return Staff(new.user.email, new.totp_secret, "officer")


def _routed(session: Session, settings: Settings, acme: Api) -> Complaint:
    acme.check(HOLDER)  # acme-cards is finance: the financial regulator's desk is referred to
    complaint = routing.lodge(session, settings, HOLDER, "10690001", "sms", utcnow(), "loan offer")
    session.commit()
    return complaint


def test_staff_enter_a_telephone_complaint_recording_who(
    as_officer: FlaskClient, officer: Staff, session: Session, settings: Settings, acme: Api
) -> None:
    acme.check(HOLDER)
    resp = post_form(as_officer, "/admin/complaints/new", "/admin/complaints/new", {
        "phone": "138 0013 8000", "address": "10690001", "channel": "voice",
        "contacted_at": "2026-01-05T10:00", "type": "after_refusal", "text": "called twice",
    })  # fmt: skip
    assert resp.status_code == 302, resp.get_data(as_text=True)
    complaint = session.scalar(select(Complaint).where(Complaint.intake == "staff"))
    assert complaint is not None
    assert (complaint.entered_by, complaint.type, complaint.phone) == (
        officer.email, "after_refusal", HOLDER)  # fmt: skip
    page = as_officer.get(resp.headers["Location"]).get_data(as_text=True)
    assert f"entered by {officer.email}" in page
    audit = session.scalars(select(StaffAudit.action).where(
        StaffAudit.subject == f"complaint:{complaint.id}")).all()  # fmt: skip
    assert "complaint.enter" in audit
    assert "complaint.file" in audit


def test_bad_telephone_entry_is_shown_not_lost(as_officer: FlaskClient) -> None:
    resp = post_form(as_officer, "/admin/complaints/new", "/admin/complaints/new", {
        "phone": "12", "address": "10690001", "channel": "sms",
        "contacted_at": "2026-01-05T10:00", "type": "no_consent",
    })  # fmt: skip
    assert resp.status_code == 400
    assert "e.g. 131 0000 1234" in resp.get_data(as_text=True)


def test_a_viewer_cannot_enter_a_complaint(as_viewer: FlaskClient) -> None:
    assert as_viewer.get("/admin/complaints/new").status_code == 403


def test_the_sector_desk_answers_in_the_thread_and_another_sector_is_refused(
    client: FlaskClient, session: Session, settings: Settings, acme: Api, world: World
) -> None:
    complaint = _routed(session, settings, acme)
    assert complaint.sector == "financial"
    housing = _desk(session, "housing@regulator.example", "housing")
    sign_in(client, housing)
    page = f"/admin/complaints/{complaint.id}"
    post_form(client, page, f"{page}/reply", {"body": "Not ours", "then_status": ""})
    sector_route = session.scalar(select(ComplaintRoute).where(
        ComplaintRoute.complaint_id == complaint.id, ComplaintRoute.role == "sector"))  # fmt: skip
    assert sector_route is not None
    assert sector_route.answered_at is None
    client.post("/admin/logout", data={})
    client.delete_cookie("anning_staff", path="/admin")
    finance = _desk(session, "finance@regulator.example", "financial")
    sign_in(client, finance)
    post_form(client, page, f"{page}/reply", {"body": "We have opened a case with the bank.",
                                              "then_status": ""})  # fmt: skip
    session.refresh(sector_route)
    assert sector_route.answered_at is not None
    assert sector_route.answered_by == "finance@regulator.example"


def test_the_final_reply_closes_and_texts_the_holder(
    as_officer: FlaskClient, session: Session, settings: Settings, acme: Api
) -> None:
    complaint = _routed(session, settings, acme)
    page = f"/admin/complaints/{complaint.id}"
    before = len(session.scalars(select(SmsMessage).where(SmsMessage.phone == HOLDER)).all())
    resp = post_form(as_officer, page, f"{page}/reply",
                     {"body": "Acme was told to stop.", "then_status": "closed"})  # fmt: skip
    assert resp.status_code == 302
    session.refresh(complaint)
    assert complaint.status == "closed"
    assert complaint.closed_at is not None
    texts = session.scalars(select(SmsMessage).where(SmsMessage.phone == HOLDER)).all()
    assert len(texts) == before + 1
    assert complaint.reference in texts[-1].body


def test_handling_statistics_and_csv(
    as_viewer: FlaskClient, session: Session, settings: Settings, acme: Api
) -> None:
    _routed(session, settings, acme)
    stats.refresh(session, utcnow())  # the pages read the rollups (registry stats refresh)
    session.commit()
    page = as_viewer.get("/admin/complaints/stats")
    assert page.status_code == 200
    assert "Complaint handling per organization" in page.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(
        as_viewer.get("/admin/complaints/stats/handling_org.csv").get_data(as_text=True))))  # fmt: skip
    assert rows[0][0] == "organization"
    assert rows[1][:2] == ["acme", "1"]
    intake = as_viewer.get("/admin/complaints/stats/handling_intake.csv").get_data(as_text=True)
    assert "site,1" in intake
    # One complaint for one check of a finance sender: 10,000 per 10,000 checks.
    rates = as_viewer.get("/admin/complaints/stats/rates_category.csv").get_data(as_text=True)
    assert "finance,1,1,10000.00" in rates
    by_org = as_viewer.get("/admin/complaints/stats/rates_org.csv").get_data(as_text=True)
    assert "acme,1,1,10000.00" in by_org
    assert as_viewer.get("/admin/complaints/stats/nope.csv").status_code == 404
