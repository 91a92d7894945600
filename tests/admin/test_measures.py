"""Issue 17: credit codes, the range of measures, and what a measure does to the sender."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.orgs.models import Organization
from registry.sanctions.measures import fine_cap
from registry.sanctions.models import Sanction
from tests.admin.conftest import Staff, csrf, file_complaint, make_staff, post_form, sign_in
from tests.conftest import Api
from tests.factories import HOLDER, World

# Synthetic codes with a correct GB 32100-2015 check character (not real companies).
CODE = "91310000MA1FL0000N"
CODE2 = "91110105MA0000000Y"
BAD_CHECK = "91310000MA1FL0000M"
PAGE = "/admin/orgs/acme"
MEASURES = "/admin/orgs/acme/measures"


def _version(client: FlaskClient, page: str = PAGE) -> str:
    match = re.search(r'name="version" value="(\d+)"', client.get(page).get_data(as_text=True))
    assert match
    return match.group(1)


def _measure(client: FlaskClient, **data: str) -> object:
    data.setdefault("version", _version(client))
    return post_form(client, PAGE, MEASURES, data)


def _actions(session: Session) -> list[str]:
    return list(session.scalars(select(StaffAudit.action).order_by(StaffAudit.id)))


def _rows(session: Session) -> list[Sanction]:
    session.expire_all()
    return list(session.scalars(select(Sanction).order_by(Sanction.id)))


def test_fine_cap_follows_the_sms_rules() -> None:
    assert fine_cap(0) == 10_000
    assert fine_cap(1_000) == 3_000
    assert fine_cap(10_000) == 30_000
    assert fine_cap(50_000) == 30_000


def test_org_with_credit_code_and_region_from_the_console(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    bad = post_form(as_officer, "/admin/orgs", "/admin/orgs",
                    {"slug": "bank-b", "name": "Bank B", "role": "sender",
                     "credit_code": BAD_CHECK})  # fmt: skip
    assert bad.status_code == 422
    assert "check character does not match" in bad.get_data(as_text=True)
    short = post_form(as_officer, "/admin/orgs", "/admin/orgs",
                      {"slug": "bank-b", "name": "Bank B", "role": "sender",
                       "credit_code": "9131000"})  # fmt: skip
    assert "18 characters" in short.get_data(as_text=True)
    assert session.scalar(select(Organization).where(Organization.slug == "bank-b")) is None
    ok = post_form(as_officer, "/admin/orgs", "/admin/orgs",
                   {"slug": "bank-b", "name": "Bank B", "role": "sender",
                    "credit_code": CODE.lower(), "region": "上海"})  # fmt: skip
    assert ok.status_code == 302
    org = session.scalar(select(Organization).where(Organization.slug == "bank-b"))
    assert org is not None
    assert (org.credit_code, org.region) == (CODE, "上海")
    assert CODE in as_officer.get("/admin/orgs").get_data(as_text=True)
    taken = post_form(as_officer, "/admin/orgs", "/admin/orgs",
                      {"slug": "bank-c", "name": "Bank C", "role": "sender",
                       "credit_code": CODE})  # fmt: skip
    assert taken.status_code == 422
    assert "belongs to bank-b" in taken.get_data(as_text=True)


def test_identity_of_an_existing_org(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    page = "/admin/orgs/acme/identity"
    bad = post_form(
        as_officer, PAGE, page, {"credit_code": "X" * 18, "version": _version(as_officer)}
    )
    assert bad.status_code == 422
    assert "starts with 8 digits" in bad.get_data(as_text=True)
    resp = post_form(as_officer, PAGE, page,
                     {"credit_code": CODE2, "region": "北京", "version": _version(as_officer)})  # fmt: skip
    assert resp.status_code == 302
    assert CODE2 in as_officer.get(PAGE).get_data(as_text=True)
    assert _actions(session)[-1] == "org.identity"


def test_notice_and_interview_with_evidence(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    mine = file_complaint(session, HOLDER)
    theirs = file_complaint(session, HOLDER, address="10690002")
    refused = _measure(as_officer, kind="notice", reason="Complaints", complaints=str(theirs.id))
    assert refused.status_code == 422
    assert f"no complaint about acme: {theirs.id}" in refused.get_data(as_text=True)
    assert _rows(session) == []
    assert _measure(as_officer, kind="notice", reason="Most complaints in Q3",
                    complaints=f"{mine.id}").status_code == 302  # fmt: skip
    no_date = _measure(as_officer, kind="interview", reason="Talk")
    assert no_date.status_code == 422
    assert "needs its date" in no_date.get_data(as_text=True)
    assert _measure(as_officer, kind="interview", reason="Talk", meets_at="2026-12-03T10:00",
                    minutes="Agreed to check before every campaign").status_code == 302  # fmt: skip
    notice, interview = _rows(session)
    assert (notice.kind, notice.evidence, notice.created_by) == (
        "notice",
        f"complaints: {mine.id}",
        "officer@regulator.example",
    )
    assert interview.minutes == "Agreed to check before every campaign"
    assert interview.meets_at is not None
    assert interview.meets_at.day == 3
    page = as_officer.get(PAGE).get_data(as_text=True)
    assert "Agreed to check before every campaign" in page
    assert _actions(session)[-2:] == ["measure.notice", "measure.interview"]


def test_rectification_deadline_and_overdue(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    past = _measure(as_officer, kind="rectification", reason="Fix", deadline="2020-01-01T00:00")
    assert past.status_code == 422
    assert "must be in the future" in past.get_data(as_text=True)
    assert _rows(session) == []
    assert _measure(as_officer, kind="rectification", reason="Fix consent records",
                    deadline="2099-01-01T00:00").status_code == 302  # fmt: skip
    [row] = _rows(session)
    assert "overdue" not in as_officer.get(PAGE).get_data(as_text=True)
    row.deadline = row.ends_at = row.starts_at - timedelta(days=1)  # as if the deadline passed
    session.commit()
    assert "overdue" in as_officer.get(PAGE).get_data(as_text=True)
    index = as_officer.get("/admin/sanctions").get_data(as_text=True)
    assert f"acme#measure-{row.id}" in index
    done = post_form(as_officer, PAGE, f"/admin/orgs/acme/measures/{row.id}/complete",
                     {"version": _version(as_officer)})  # fmt: skip
    assert done.status_code == 302
    assert _rows(session)[0].done_at is not None
    index = as_officer.get("/admin/sanctions").get_data(as_text=True)
    assert "No rectification order is overdue." in index
    assert _actions(session)[-1] == "measure.rectified"


def test_fine_within_the_cap_and_its_payment(
    as_officer: FlaskClient, session: Session, world: World
) -> None:
    for gains, amount, cap in (("5000", "15001", "15000"), ("", "10001", "10000"),
                               ("20000", "30001", "30000")):  # fmt: skip
        resp = _measure(as_officer, kind="fine", reason="Fine", illegal_gains=gains, amount=amount)
        assert resp.status_code == 422
        assert f"at most {cap} yuan" in resp.get_data(as_text=True)
    assert _rows(session) == []
    ok = _measure(as_officer, kind="fine", reason="Fine", illegal_gains="5000", amount="15000")
    assert ok.status_code == 302
    [row] = _rows(session)
    assert (row.illegal_gains, row.amount, row.done_at) == (5000, 15000, None)
    assert "unpaid" in as_officer.get(PAGE).get_data(as_text=True)
    post_form(as_officer, PAGE, f"/admin/orgs/acme/measures/{row.id}/complete",
              {"version": _version(as_officer)})  # fmt: skip
    assert _rows(session)[0].done_at is not None
    assert _actions(session)[-2:] == ["measure.fine", "measure.paid"]


def test_listing_limits_everywhere_until_lifted_with_a_reason(
    as_officer: FlaskClient, acme: Api, shop: Api, session: Session, world: World
) -> None:
    assert acme.post("/delegations", {"agent": "shop", "senders": ["acme-cards"],
                                      "scopes": ["check"]}).status_code == 201  # fmt: skip
    assert _measure(as_officer, kind="listing", reason="Repeated violations",
                    days="180").status_code == 302  # fmt: skip
    new_sender = {"code": "acme-new", "name": "New", "category": "finance", "addresses": []}
    refused = acme.post("/senders", new_sender)
    assert refused.status_code == 403
    assert "on the credit list" in refused.get_json()["error"]["message"]
    assert acme.post("/delegations", {"agent": "shop", "senders": ["acme-cards"],
                                      "scopes": ["check"]}).status_code == 403  # fmt: skip
    # as agent: shop may not delegate to a listed organization
    assert shop.post("/delegations", {"agent": "acme", "senders": ["shop-deals"],
                                      "scopes": ["check"]}).status_code == 403  # fmt: skip
    key = post_form(as_officer, PAGE, "/admin/orgs/acme/keys", {"name": "more"})
    assert key.status_code == 403
    assert "on the credit list" in key.get_data(as_text=True)
    sender = post_form(as_officer, PAGE, "/admin/orgs/acme/senders",
                       {"code": "acme-new", "name": "New", "category": "finance"})  # fmt: skip
    assert sender.status_code == 422
    assert "on the credit list" in sender.get_data(as_text=True)
    # the wrong party is not limited
    assert shop.post("/senders", {**new_sender, "code": "shop-new"}).status_code == 201
    [row] = _rows(session)
    lift = f"/admin/orgs/acme/measures/{row.id}/lift"
    early = post_form(as_officer, PAGE, lift, {"lift_reason": "", "version": _version(as_officer)})
    assert early.status_code == 422
    assert "needs a reason" in early.get_data(as_text=True)
    assert acme.post("/senders", new_sender).status_code == 403
    assert post_form(as_officer, PAGE, lift, {"lift_reason": "Court annulled the decision",
                                              "version": _version(as_officer)}).status_code == 302  # fmt: skip
    assert acme.post("/senders", new_sender).status_code == 201
    lifted = _rows(session)[0]
    assert lifted.lift_reason == "Court annulled the decision"
    assert _actions(session)[-2:] == ["measure.listing", "measure.lift"]


def test_address_suspension_is_published(
    as_officer: FlaskClient, app: Flask, session: Session, world: World
) -> None:
    other = _measure(as_officer, kind="address", reason="Spam", address="10690002", days="30")
    assert other.status_code == 422
    assert "has no address" in other.get_data(as_text=True)
    ok = _measure(as_officer, kind="address", reason="Spam from this port", address="10690001",
                  days="30")  # fmt: skip
    assert ok.status_code == 302
    page = app.test_client().get("/sanctions", headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert "10690001" in text
    assert "Spam from this port" in text


def test_two_officers_at_once_one_wins_and_the_other_is_told(
    app: Flask, as_officer: FlaskClient, session: Session, world: World
) -> None:
    second: Staff = make_staff(session, "second@regulator.example", "officer")
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    sign_in(other, second)
    seen = _version(as_officer)
    assert _version(other) == seen
    token = csrf(other, PAGE)
    first = _measure(as_officer, kind="notice", reason="First", version=seen)
    assert first.status_code == 302
    late = other.post(MEASURES, data={"csrf_token": token, "kind": "listing",
                                      "reason": "Second", "days": "30", "version": seen})  # fmt: skip
    assert late.status_code == 409
    assert "another officer acted on acme" in late.get_data(as_text=True)
    assert [r.reason for r in _rows(session)] == ["First"]
    late_suspend = other.post("/admin/orgs/acme/suspend", data={
        "csrf_token": token, "reason": "x", "days": "3", "version": seen})  # fmt: skip
    assert late_suspend.status_code == 302
    assert [r.reason for r in _rows(session)] == ["First"]


def test_viewer_cannot_take_measures(
    as_viewer: FlaskClient, session: Session, world: World
) -> None:
    token = csrf(as_viewer, PAGE)
    resp = as_viewer.post(MEASURES, data={"csrf_token": token, "kind": "notice", "reason": "x"})
    assert resp.status_code == 403
    assert _rows(session) == []


def test_agents_checks_for_a_suspended_principal_answer_sender_suspended(
    as_officer: FlaskClient, acme: Api, shop: Api, world: World
) -> None:
    assert acme.post("/delegations", {"agent": "shop", "senders": ["acme-cards"],
                                      "scopes": ["check"]}).status_code == 201  # fmt: skip
    assert shop.check(HOLDER, sender="acme-cards")["reason"] != "sender_suspended"
    post_form(as_officer, PAGE, "/admin/orgs/acme/suspend",
              {"reason": "Suspended", "days": "7", "version": _version(as_officer)})  # fmt: skip
    answer = shop.check(HOLDER, sender="acme-cards")
    assert (answer["decision"], answer["reason"]) == ("deny", "sender_suspended")
    assert shop.check(HOLDER, sender="shop-deals")["reason"] != "sender_suspended"


def _feed(api: Api) -> list[dict[str, object]]:
    resp = api.get("/changes?after=0&limit=1000")
    assert resp.status_code == 200
    return [c for c in resp.get_json()["changes"] if str(c["type"]).startswith("organization.")]


def test_carriers_are_told_through_the_feed_and_others_are_not(
    as_officer: FlaskClient, acme: Api, shop: Api, carrier: Api, session: Session
) -> None:
    from registry.orgs.services import set_identity

    org = session.scalar(select(Organization).where(Organization.slug == "acme"))
    assert org is not None
    set_identity(session, org, CODE, None)
    session.commit()
    post_form(as_officer, PAGE, "/admin/orgs/acme/suspend",
              {"reason": "Ignored opt-outs", "days": "7", "version": _version(as_officer)})  # fmt: skip
    _measure(as_officer, kind="listing", reason="Listed", days="90")
    post_form(as_officer, PAGE, "/admin/orgs/acme/lift",
              {"lift_reason": "Rectified", "version": _version(as_officer)})  # fmt: skip
    told = _feed(carrier)
    assert [(c["type"], c["sanction"]["measure"]) for c in told] == [  # type: ignore[index]
        ("organization.sanctioned", "suspension"),
        ("organization.sanctioned", "listing"),
        ("organization.sanction_lifted", "suspension"),
    ]
    first = told[0]
    assert first["organization"] == "acme"
    assert first["phone"] is None
    assert first["sanction"]["credit_code"] == CODE  # type: ignore[index]
    assert str(first["sanction"]["ends_at"]).endswith("Z")  # type: ignore[index]
    assert len(_feed(acme)) == 3  # the organization itself
    assert _feed(shop) == []  # a platform that is neither the carrier nor the sanctioned
