"""The public register as data: /sanctions.csv, .json, .atom and the credit list, parsed."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import refresh
from sqlalchemy.orm import Session

from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.sanctions import measures
from registry.sanctions import services as sanctions
from registry.senders.models import Sender
from registry.timeutil import utcnow
from tests.factories import World

CODE = "91310000MA1FL0000N"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def register(session: Session, world: World) -> None:
    """Acme fined and listed (with a credit code), shop-deals suspended, a lifted suspension."""
    now = utcnow()
    acme = session.get(Organization, world.org_ids["acme"])
    shop = session.get(Organization, world.org_ids["shop"])
    assert acme is not None
    assert shop is not None
    orgs.set_identity(session, acme, CODE, "上海")
    basis = measures.Basis(
        "=Ignored opt-outs, 退订 ignored", None, "officer@regulator.example", now
    )
    measures.fine(session, acme, basis, 2000, 6000)
    measures.listing(session, acme, basis, 90)
    deals = session.get(Sender, world.sender_ids["shop-deals"])
    assert deals is not None
    sanctions.suspend_sender(session, deals, "Texted after deny", 30, "officer@x", now)
    sanctions.suspend_org(session, shop, "Short suspension", 3, "officer@x", now)
    sanctions.lift_org(session, shop, now + timedelta(seconds=1))
    session.commit()


def test_json_names_measures_and_the_credit_list(client: FlaskClient, register: None) -> None:
    resp = client.get("/sanctions.json")
    assert resp.status_code == 200
    data = resp.get_json()
    kinds = {(m["kind"], m["organization_slug"], m["status"]) for m in data["measures"]}
    assert ("fine", "acme", "in_force") in kinds
    assert ("listing", "acme", "in_force") in kinds
    assert ("suspension", "shop", "lifted") in kinds
    fine = next(m for m in data["measures"] if m["kind"] == "fine")
    assert (fine["credit_code"], fine["region"], fine["fine_yuan"]) == (CODE, "上海", 6000)
    assert [o["credit_code"] for o in data["credit_list"]] == [CODE]
    assert data["credit_list"][0]["listed_until"].endswith("Z")


def test_csv_parses_and_is_safe_in_a_spreadsheet(client: FlaskClient, register: None) -> None:
    resp = client.get("/sanctions.csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    fine = next(r for r in rows if r["kind"] == "fine")
    assert fine["credit_code"] == CODE
    assert fine["reason"] == "'=Ignored opt-outs, 退订 ignored"  # not a formula
    assert {r["organization_slug"] for r in rows} == {"acme", "shop"}
    listed = client.get("/sanctions/credit-list.csv").get_data(as_text=True).lstrip("\ufeff")
    [row] = list(csv.DictReader(io.StringIO(listed)))
    assert (row["organization_slug"], row["credit_code"], row["region"]) == ("acme", CODE, "上海")


def test_atom_is_a_feed_with_one_entry_per_measure(client: FlaskClient, register: None) -> None:
    resp = client.get("/sanctions.atom")
    assert resp.status_code == 200
    assert resp.mimetype == "application/atom+xml"
    feed = ET.fromstring(resp.get_data())
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id", "").endswith("/sanctions")
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 4
    titles = [e.findtext(f"{ATOM}title", "") for e in entries]
    assert any(t.startswith("fine: Acme (" + CODE + ")") for t in titles)
    for entry in entries:
        assert entry.findtext(f"{ATOM}id")
        assert entry.findtext(f"{ATOM}updated", "").endswith("Z")


def test_exports_need_no_sign_in_and_are_empty_when_nothing_happened(
    app: Flask, world: World
) -> None:
    client = app.test_client()
    assert client.get("/sanctions.json").get_json()["measures"] == []
    feed = ET.fromstring(client.get("/sanctions.atom").get_data())
    assert feed.findall(f"{ATOM}entry") == []
    text = client.get("/sanctions.csv").get_data(as_text=True).lstrip("\ufeff")
    assert list(csv.DictReader(io.StringIO(text))) == []


def test_public_page_names_the_credit_code_and_the_list(app: Flask, register: None) -> None:
    page = app.test_client().get("/sanctions", headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert CODE in text
    assert "Credit list" in text
    assert "6,000 yuan" in text
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    zh = app.test_client().get("/sanctions", headers={"Accept-Language": "zh-CN"})
    assert "信用" in zh.get_data(as_text=True)
