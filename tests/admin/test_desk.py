"""The complaint desk: queue and filters, the verdict on the page, replies, status, ageing, trigger."""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.complaints import services as complaints
from registry.sanctions.models import Sanction
from registry.timeutil import utcnow
from tests.admin.conftest import file_complaint, post_form
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World


@pytest.fixture
def open_hours(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calling hours all day and consents active at once (not what these tests are about)."""
    s = replace(
        app.config["REGISTRY"],
        calling_hours=(time(0), time(23, 59, 59)),
        require_confirmation=False,
    )
    monkeypatch.setitem(app.config, "REGISTRY", s)


def test_queue_filters(as_viewer: FlaskClient, session: Session, world: World) -> None:
    a = file_complaint(session, HOLDER, filed_days_ago=9)
    b = file_complaint(session, HOLDER2, address="10690002", filed_days_ago=1)
    c = file_complaint(session, HOLDER2, address="95000", channel="voice")  # nobody's number
    complaints.set_status(session, b, "closed")
    session.commit()

    def ids(query: str) -> set[int]:
        html = as_viewer.get(f"/admin/complaints{query}").get_data(as_text=True)
        return {i for i in (a.id, b.id, c.id) if f'id="complaint-{i}"' in html}

    assert ids("") == {a.id, b.id, c.id}
    assert ids("?status=open") == {a.id, c.id}
    assert ids("?org=acme") == {a.id}
    assert ids("?sender=shop-deals") == {b.id}
    assert ids("?older_than=5") == {a.id}
    assert ids("?overdue=1") == {a.id}
    assert "overdue" in as_viewer.get("/admin/complaints").get_data(as_text=True)
    assert as_viewer.get("/admin/complaints?older_than=abc").status_code == 400
    assert as_viewer.get("/admin/complaints?status=<script>").status_code == 400


def test_ageing_follows_the_setting(
    app: Flask,
    as_viewer: FlaskClient,
    session: Session,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = file_complaint(session, HOLDER, filed_days_ago=8)
    assert f'id="complaint-{a.id}"' in as_viewer.get("/admin/complaints?overdue=1").get_data(
        as_text=True
    )
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], complaint_answer_days=10)
    )
    assert f'id="complaint-{a.id}"' not in as_viewer.get("/admin/complaints?overdue=1").get_data(
        as_text=True
    )


@pytest.mark.usefixtures("open_hours")
def test_each_verdict_on_the_complaint_page(
    as_viewer: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    unknown = file_complaint(session, HOLDER, address="95000")
    no_check = file_complaint(session, HOLDER)
    acme.check(HOLDER)
    despite = file_complaint(session, HOLDER)
    acme.post("/consents", {"phone": HOLDER2, "sender": "acme-cards", "channels": ["sms"],
                            "evidence": {"method": "paper_form", "captured_at": utcnow().isoformat(),
                                         "wording": "I agree to card offers by SMS", "sha256": "ab" * 32}})  # fmt: skip
    acme.check(HOLDER2)
    allowed = file_complaint(session, HOLDER2)
    for complaint, code in ((unknown, "unknown_sender"), (no_check, "no_check"),
                            (despite, "contacted_despite_deny"), (allowed, "allowed")):  # fmt: skip
        html = as_viewer.get(f"/admin/complaints/{complaint.id}").get_data(as_text=True)
        assert f'<span class="badge {code}" id="verdict-code">{code}</span>' in html
    html = as_viewer.get(f"/admin/complaints/{allowed.id}").get_data(as_text=True)
    assert "I agree to card offers by SMS" in html
    assert "paper_form" in html
    assert "ab" * 32 in html


def test_officer_replies_and_the_holder_sees_it(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    c = file_complaint(session, HOLDER, text="They called at 23:00 <b>again</b>")
    page = as_officer.get(f"/admin/complaints/{c.id}").get_data(as_text=True)
    assert "&lt;b&gt;again&lt;/b&gt;" in page
    resp = post_form(as_officer, f"/admin/complaints/{c.id}", f"/admin/complaints/{c.id}/reply",
                     {"body": "We have opened a case against the sender.", "then_status": ""})  # fmt: skip
    assert resp.status_code == 302
    session.expire_all()
    # What the holder's complaint page reads: the same thread.
    [mine] = complaints.for_phone(session, HOLDER)
    assert mine.status == "answered"
    assert mine.answered_at is not None
    [message] = complaints.thread(session, mine.id or 0)
    assert message.body == "We have opened a case against the sender."
    assert message.author == "regulator:officer@regulator.example"
    closed = post_form(
        as_officer,
        f"/admin/complaints/{c.id}",
        f"/admin/complaints/{c.id}/status",
        {"status": "closed"},
    )
    assert closed.status_code == 302
    session.expire_all()
    assert complaints.get(session, c.id or 0).status == "closed"
    actions = session.scalars(
        select(StaffAudit.action).where(StaffAudit.subject == f"complaint:{c.id}")
    ).all()
    assert {"complaint.view", "complaint.reply", "complaint.status"} <= set(actions)


def test_bad_replies_and_statuses_change_nothing(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    c = file_complaint(session, HOLDER)
    page, reply, status = (
        f"/admin/complaints/{c.id}",
        f"/admin/complaints/{c.id}/reply",
        f"/admin/complaints/{c.id}/status",
    )
    assert post_form(as_officer, page, reply, {"body": "   "}).status_code == 302
    assert post_form(as_officer, page, reply, {"body": "x" * 4001}).status_code == 302
    assert post_form(as_officer, page, status, {"status": "deleted"}).status_code == 302
    assert as_officer.post(reply, data={"body": "no token"}).status_code == 400
    session.expire_all()
    assert complaints.thread(session, c.id or 0) == []
    assert complaints.get(session, c.id or 0).status == "open"
    assert as_officer.get("/admin/complaints/99999999999").status_code == 404
    assert as_officer.get("/admin/complaints/0").status_code == 404


def test_viewer_cannot_reply(as_viewer: FlaskClient, session: Session, world: World) -> None:
    c = file_complaint(session, HOLDER)
    resp = post_form(
        as_viewer, f"/admin/complaints/{c.id}", f"/admin/complaints/{c.id}/reply", {"body": "hi"}
    )
    assert resp.status_code == 403


def _five_verified(session: Session) -> None:
    for i in range(5):
        file_complaint(
            session, f"+86138001380{i:02d}", contacted_at=utcnow() - timedelta(minutes=5)
        )


def test_scan_flags_a_sender_with_five_verified_complaints(
    app: Flask, session: Session, world: World, acme: Api
) -> None:
    _five_verified(session)
    out = CliRunner().invoke(app.cli, ["sanctions", "scan"])
    assert out.exit_code == 0, out.output
    assert "acme-cards\t5 verified complaints\tflagged" in out.output
    assert acme.check(HOLDER)["reason"] != "sender_suspended"
    again = CliRunner().invoke(app.cli, ["sanctions", "scan"])
    assert "already" in again.output
    assert session.scalars(select(Sanction.kind)).all() == ["flag"]


def test_scan_suspends_when_configured(
    app: Flask, session: Session, world: World, acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], sanction_auto_suspend=True)
    )
    _five_verified(session)
    out = CliRunner().invoke(app.cli, ["sanctions", "scan"])
    assert "suspended" in out.output
    assert acme.check(HOLDER)["reason"] == "sender_suspended"


@pytest.mark.usefixtures("open_hours")
def test_complaints_the_records_contradict_do_not_count(
    app: Flask, session: Session, world: World, acme: Api
) -> None:
    for i in range(5):
        phone = f"+86138001380{i:02d}"
        acme.post("/consents", {"phone": phone, "sender": "acme-cards", "channels": ["sms"],
                                "evidence": {"method": "web_form", "captured_at": utcnow().isoformat()}})  # fmt: skip
        acme.check(phone)
        file_complaint(session, phone)
    out = CliRunner().invoke(app.cli, ["sanctions", "scan"])
    assert "0 new" in out.output


def test_complaint_statistics(
    app: Flask, as_viewer: FlaskClient, session: Session, world: World
) -> None:
    a = file_complaint(session, HOLDER)
    file_complaint(session, HOLDER2, address="10690002")
    file_complaint(session, HOLDER2)
    complaints.reply(session, a, "answered", author="regulator:x@y.example")
    a.answered_at = a.created_at + timedelta(days=2)
    session.commit()
    html = as_viewer.get("/admin/stats").get_data(as_text=True)
    assert "Complaints per organization per quarter" in html
    assert "Median time to answer: 2.0 days over 1 answered complaints." in html
    csv_text = as_viewer.get("/admin/stats/complaints.csv").get_data(as_text=True)
    assert csv_text.splitlines()[1].startswith("acme,2")


def test_the_worker_runs_the_trigger_and_the_rollups(
    app: Flask, session: Session, world: World
) -> None:
    from registry.extensions import db
    from registry.stats import services as stats
    from registry.sync import worker
    from registry.sync.webhooks import DeliveryPolicy

    _five_verified(session)
    policy = DeliveryPolicy(100, 1.0, 1.0, 10.0, timedelta(days=1))
    done = worker.tick(db.session, app.config["REGISTRY"], policy, expire=False, console=True)
    assert done.errors == []
    assert done.sanctioned == 1
    assert stats.last_refresh(session) is not None
    quiet = worker.tick(db.session, app.config["REGISTRY"], policy, expire=False)
    assert quiet.sanctioned == 0


def test_queue_names_and_filters_the_carrier(
    as_viewer: FlaskClient, session: Session, world: World, carrier: Api
) -> None:
    """Issue 15: a complaint about a connected port names its carrier; ?org= matches that tier."""
    resp = carrier.post(
        "/connections", {"organization": "acme", "kind": "sms_port", "addresses": ["10690001"]}
    )
    assert resp.status_code == 201
    a = file_complaint(session, HOLDER)  # from acme's port, now connected
    b = file_complaint(session, HOLDER2, address="10690002")  # shop's port, connected by nobody
    session.commit()
    html = as_viewer.get("/admin/complaints?org=carrier").get_data(as_text=True)
    assert f'id="complaint-{a.id}"' in html
    assert f'id="complaint-{b.id}"' not in html
    assert "carrier as carrier" in html
