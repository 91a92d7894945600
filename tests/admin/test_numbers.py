"""Number ranges and disconnections in the console: officers assign, revoke, retract; audited."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import refresh
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.numbers.models import Disconnection, NumberRange
from registry.orgs import services as orgs
from registry.timeutil import iso, utcnow
from tests.admin.conftest import post_form
from tests.conftest import Api
from tests.factories import HOLDER, World


def _audit(session: Session, action: str) -> list[StaffAudit]:
    return list(session.scalars(select(StaffAudit).where(StaffAudit.action == action)))


@pytest.fixture
def telecom(session: Session, world: World) -> None:
    orgs.create_org(session, "telecom", "Telecom", "carrier")
    session.commit()


def test_officer_assigns_and_revokes_a_range_audited(
    as_officer: FlaskClient, telecom: None, session: Session
) -> None:
    resp = post_form(as_officer, "/admin/numbers", "/admin/numbers/ranges",
                     {"prefix": "+86133", "carrier": "telecom", "host": ""})  # fmt: skip
    assert resp.status_code == 302, resp.get_data(as_text=True)
    page = as_officer.get("/admin/numbers").get_data(as_text=True)
    row = re.search(r'<tr id="range-(\d+)">.*?</tr>', page, re.S)
    assert row
    assert "+86133" in row.group(0)
    assert "telecom" in row.group(0)
    [entry] = _audit(session, "range.assign")
    assert (entry.actor, entry.subject) == ("officer@regulator.example", "range:+86133")
    resp = post_form(
        as_officer, "/admin/numbers", f"/admin/numbers/ranges/{row.group(1)}/revoke", {}
    )
    assert resp.status_code == 302
    revoked = session.scalar(select(NumberRange).where(NumberRange.prefix == "+86133"))
    assert revoked is not None
    assert revoked.revoked_by == "staff:officer@regulator.example"
    assert [e.subject for e in _audit(session, "range.revoke")] == ["range:+86133"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prefix": "+861380", "carrier": "telecom"}, "overlaps the range +86138"),
        ({"prefix": "+86150", "carrier": "acme"}, "acme is not a carrier"),
        ({"prefix": "+999", "carrier": "telecom"}, "does not start with a country calling code"),
        ({"prefix": "+861330", "carrier": "telecom", "host": "carrier"}, "not inside a range"),
    ],
)
def test_bad_assignments_are_refused_on_the_form(
    as_officer: FlaskClient, telecom: None, session: Session, data: dict[str, str], message: str
) -> None:
    resp = post_form(as_officer, "/admin/numbers", "/admin/numbers/ranges", data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert _audit(session, "range.assign") == []


def test_officer_sub_assigns_for_a_host(
    as_officer: FlaskClient, telecom: None, carrier: Api
) -> None:
    resp = post_form(as_officer, "/admin/numbers", "/admin/numbers/ranges",
                     {"prefix": "+861380013", "carrier": "telecom", "host": "carrier"})  # fmt: skip
    assert resp.status_code == 302, resp.get_data(as_text=True)
    body = carrier.post("/numbers/disconnections", {"disconnections": [
        {"phone": HOLDER, "disconnected_at": iso(utcnow() - timedelta(days=1))}]}).get_json()  # fmt: skip
    assert body["rejected"][0]["error"]["code"] == "not_your_number"


def test_viewers_cannot_assign_revoke_or_retract(
    as_viewer: FlaskClient, telecom: None, session: Session
) -> None:
    page = as_viewer.get("/admin/numbers")
    assert page.status_code == 200
    assert "Assign a range" not in page.get_data(as_text=True)
    resp = post_form(as_viewer, "/admin/numbers", "/admin/numbers/ranges",
                     {"prefix": "+86133", "carrier": "telecom"})  # fmt: skip
    assert resp.status_code == 403
    retract = post_form(as_viewer, "/admin/numbers", "/admin/numbers/disconnections/1/retract",
                        {"reason": "x"})  # fmt: skip
    assert retract.status_code == 403


@pytest.fixture
def active(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )


def test_officer_retracts_a_disconnection_and_the_consent_counts_again(
    active: None, as_officer: FlaskClient, acme: Api, carrier: Api, session: Session
) -> None:
    captured = iso(utcnow() - timedelta(days=30))
    acme.post("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
                            "evidence": {"method": "web_form", "captured_at": captured}})  # fmt: skip
    carrier.post("/numbers/disconnections", {"disconnections": [
        {"phone": HOLDER, "disconnected_at": iso(utcnow() - timedelta(days=1))}]})  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "reassigned"
    page = as_officer.get(f"/admin/numbers?phone={HOLDER}").get_data(as_text=True)
    assert "Held by carrier (range +86138)" in page
    found = session.scalar(select(Disconnection))
    assert found is not None
    assert f'id="disconnection-{found.id}"' in page
    lookup = f"/admin/numbers?phone={HOLDER}"
    action = f"/admin/numbers/disconnections/{found.id}/retract"
    acme.post("/watchlist", {"phones": [HOLDER]})  # the feed shows changes from here on
    resp = post_form(as_officer, lookup, action, {"reason": ""})
    assert resp.status_code == 302
    assert acme.check(HOLDER)["reason"] == "reassigned"  # no reason, no retraction
    resp = post_form(as_officer, lookup, action, {"reason": "the carrier's file was wrong"})
    assert resp.status_code == 302
    assert acme.check(HOLDER)["reason"] == "consent"
    [entry] = _audit(session, "disconnection.retract")
    data = json.loads(entry.data or "{}")
    assert (entry.actor, data["carrier"], data["restored_consents"]) == (
        "officer@regulator.example", "carrier", 1,
    )  # fmt: skip
    page = as_officer.get(lookup).get_data(as_text=True)
    assert "the carrier&#39;s file was wrong" in page
    # The feed says the regulator retracted it (to a watch begun before the retraction).
    changes = acme.get("/changes?after=0&limit=1000").get_json()["changes"]
    [retracted] = [c for c in changes if c["type"] == "number.disconnection_retracted"]
    assert (retracted["carrier"], retracted["retracted_by"]) == ("carrier", "regulator")


def test_lookup_of_a_bad_number_is_a_form_error(as_officer: FlaskClient) -> None:
    resp = as_officer.get("/admin/numbers?phone=not-a-number")
    assert resp.status_code == 200
    assert "not a phone number" in resp.get_data(as_text=True)
    assert as_officer.get("/admin/numbers/disconnections/99999/retract").status_code == 405
    assert (
        post_form(as_officer, "/admin/numbers", "/admin/numbers/disconnections/99999/retract",
                  {"reason": "x"}).status_code == 404
    )  # fmt: skip


def test_the_page_speaks_chinese(as_officer: FlaskClient) -> None:
    as_officer.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    page = as_officer.get("/admin/numbers").get_data(as_text=True)
    assert "分配号段" in page
    assert "Assign a range" not in page
