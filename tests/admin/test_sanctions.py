"""Sanctions: suspensions bite on POST /check, the public register, the complaint trigger."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.config import ConfigError, load_settings
from registry.sanctions import services as sanctions
from registry.sanctions.models import Sanction
from registry.senders import services as senders
from registry.senders.models import Sender
from registry.timeutil import utcnow
from tests.admin.conftest import post_form
from tests.conftest import Api
from tests.factories import HOLDER, World


def test_suspended_sender_is_refused_until_lifted(
    as_officer: FlaskClient, acme: Api, session: Session
) -> None:
    resp = post_form(as_officer, "/admin/orgs/acme", "/admin/senders/acme-cards/suspend",
                     {"reason": "Calls without checking", "days": "30"})  # fmt: skip
    assert resp.status_code == 302
    answer = acme.check(HOLDER)
    assert (answer["decision"], answer["reason"]) == ("deny", "sender_suspended")
    page = as_officer.get("/admin/orgs/acme").get_data(as_text=True)
    assert "Calls without checking" in page
    lift = "/admin/senders/acme-cards/lift"
    assert post_form(as_officer, "/admin/orgs/acme", lift, {}).status_code == 302
    assert "needs a reason" in as_officer.get("/admin/orgs/acme").get_data(as_text=True)
    assert acme.check(HOLDER)["reason"] == "sender_suspended"
    resp = post_form(as_officer, "/admin/orgs/acme", lift, {"lift_reason": "Rectified"})
    assert resp.status_code == 302
    assert acme.check(HOLDER)["reason"] == "no_consent"
    row = session.scalars(select(Sanction)).one()
    assert (row.lift_reason, row.lifted_by) == ("Rectified", "officer@regulator.example")
    actions = session.scalars(select(StaffAudit.action).order_by(StaffAudit.id)).all()
    assert actions[-2:] == ["sender.suspend", "sender.lift"]


def test_suspended_org_refuses_every_sender(
    as_officer: FlaskClient, acme: Api, shop: Api, session: Session, world: World
) -> None:
    senders.create_sender(session, world.org_ids["acme"], "acme-loans", "Loans", "finance", [])
    session.commit()
    resp = post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/suspend",
                     {"reason": "Repeated complaints", "days": "7"})  # fmt: skip
    assert resp.status_code == 302
    for code in ("acme-cards", "acme-loans"):
        assert acme.check(HOLDER, sender=code)["reason"] == "sender_suspended"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] != "sender_suspended"


def test_public_register_lists_sanctions_without_sign_in(
    as_officer: FlaskClient, app: Flask, world: World
) -> None:
    post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/suspend",
              {"reason": "Ignored opt-outs <script>", "days": "7"})  # fmt: skip
    page = app.test_client().get("/sanctions", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Acme" in text
    assert "Ignored opt-outs &lt;script&gt;" in text
    assert "in force" in text


def test_bad_suspension_input_changes_nothing(
    as_officer: FlaskClient, acme: Api, session: Session
) -> None:
    for data in ({"reason": "", "days": "3"}, {"reason": "x", "days": "0"},
                 {"reason": "x", "days": "abc"}, {"reason": "x" * 501, "days": "3"}):  # fmt: skip
        resp = post_form(as_officer, "/admin/orgs/acme", "/admin/senders/acme-cards/suspend", data)
        assert resp.status_code == 302
    assert acme.check(HOLDER)["reason"] != "sender_suspended"
    assert session.scalar(select(Sanction.id)) is None
    missing = post_form(
        as_officer, "/admin/orgs/acme", "/admin/senders/nope/suspend", {"reason": "x", "days": "3"}
    )
    assert missing.status_code == 404


def test_lifting_what_is_not_suspended_is_a_message_not_an_error(
    as_officer: FlaskClient, world: World
) -> None:
    resp = post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/lift", {"lift_reason": "x"})
    assert resp.status_code == 302
    assert "not suspended" in as_officer.get("/admin/orgs/acme").get_data(as_text=True)


def test_trigger_flags_then_does_not_flag_again(session: Session, world: World) -> None:
    now = utcnow()
    sender_id = world.sender_ids["acme-cards"]
    kw = {"threshold": 5, "days": 10, "auto_suspend": False, "suspend_days": 30, "now": now}
    assert sanctions.scan(session, [(sender_id, 4)], **kw) == []
    [hit] = sanctions.scan(session, [(sender_id, 5)], **kw)
    assert hit.action == "flagged"
    [again] = sanctions.scan(session, [(sender_id, 6)], **kw)
    assert again.action == "already"
    sender = session.get(Sender, sender_id)
    assert sender is not None
    assert sender.suspended_until is None  # a flag does not suspend


def test_trigger_suspends_when_configured(session: Session, world: World, acme: Api) -> None:
    sender_id = world.sender_ids["acme-cards"]
    [hit] = sanctions.scan(session, [(sender_id, 7)], threshold=5, days=10, auto_suspend=True,
                           suspend_days=30, now=utcnow())  # fmt: skip
    session.commit()
    assert hit.action == "suspended"
    assert acme.check(HOLDER)["reason"] == "sender_suspended"


def test_settings_for_the_trigger_are_validated(app: Flask) -> None:
    base = {"REGISTRY_SECRET_KEY": "x", "REGISTRY_DATABASE_URL": "sqlite://"}
    s = load_settings(app.instance_path, {**base, "REGISTRY_SANCTION_COMPLAINTS": "3",
                                          "REGISTRY_SANCTION_AUTO_SUSPEND": "yes"})  # fmt: skip
    assert (s.sanction_complaints, s.sanction_days, s.sanction_auto_suspend) == (3, 10, True)
    assert s.complaint_answer_days == 7


@pytest.mark.parametrize(("name", "value"), [("COMPLAINT_ANSWER_DAYS", "0"), ("COMPLAINT_ANSWER_DAYS", "seven"),
                                             ("SANCTION_DAYS", "-1"), ("SANCTION_AUTO_SUSPEND", "maybe")])  # fmt: skip
def test_bad_console_settings_stop_the_start(app: Flask, name: str, value: str) -> None:
    env = {
        "REGISTRY_SECRET_KEY": "x",
        "REGISTRY_DATABASE_URL": "sqlite://",
        f"REGISTRY_{name}": value,
    }
    with pytest.raises(ConfigError, match=f"REGISTRY_{name}"):
        load_settings(app.instance_path, env)
