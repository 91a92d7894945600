"""The console: organization kinds, business filings on delegations, and the lookup log."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.orgs import services as orgs
from registry.orgs.models import Delegation, Organization
from registry.senders import services as senders
from tests.admin.conftest import post_form
from tests.api.test_filings import FILING
from tests.conftest import Api
from tests.factories import World, attest


@pytest.fixture
def line(session: Session, world: World) -> None:
    senders.create_sender(
        session, world.org_ids["acme"], "acme-cc-line", "Acme Cards Line", "finance",
        ["+862160000004"],
    )  # fmt: skip
    orgs.create_org(session, "bluesky-cc", "Blue Sky Call Center", "sender")
    session.commit()


def _grant(client: FlaskClient, **data: object) -> object:
    form = {"principal": "acme", "agent": "bluesky-cc", "senders": "acme-cc-line",
            "scopes": ["check"], **data}  # fmt: skip
    return post_form(client, "/admin/delegations", "/admin/delegations", form)  # type: ignore[arg-type]


def test_an_officer_sets_the_kind_and_then_a_filing_is_required(
    as_officer: FlaskClient, line: None, session: Session
) -> None:
    resp = post_form(as_officer, "/admin/orgs/bluesky-cc", "/admin/orgs/bluesky-cc/kind",
                     {"org-kind": "call_center"})  # fmt: skip
    assert resp.status_code == 302
    org = session.scalars(select(Organization).where(Organization.slug == "bluesky-cc")).one()
    assert org.kind == "call_center"
    audit = session.scalars(select(StaffAudit).where(StaffAudit.action == "org.kind")).one()
    assert json.loads(audit.data or "{}") == {"kind": "call_center", "was": "merchant"}
    refused = _grant(as_officer)
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = refused.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "must carry the business filing" in text
    assert session.scalars(select(Delegation)).all() == []
    filed = {**FILING, "addresses": "021 6000 0004"}
    resp = _grant(as_officer, **filed)
    assert resp.status_code == 302, resp.get_data(as_text=True)  # type: ignore[attr-defined]
    page = as_officer.get("/admin/delegations").get_data(as_text=True)
    for shown in ("credit cards", "+862160000004", "existing card holders of Acme Bank",
                  "Wang Li", "+8613100001234"):  # fmt: skip
        assert shown in page


def test_a_bad_filing_address_is_shown_on_its_field(as_officer: FlaskClient, line: None) -> None:
    resp = _grant(as_officer, **{**FILING, "addresses": "10690002"})
    assert resp.status_code == 422  # type: ignore[attr-defined]
    assert "not an address of the delegated senders" in resp.get_data(as_text=True)  # type: ignore[attr-defined]


def test_an_unfiled_delegation_to_a_call_center_is_flagged(
    as_officer: FlaskClient, line: None, acme: Api, session: Session
) -> None:
    assert acme.post("/delegations", {"agent": "bluesky-cc", "senders": ["acme-cc-line"],
                                      "scopes": ["check"]}).status_code == 201  # fmt: skip
    org = session.scalars(select(Organization).where(Organization.slug == "bluesky-cc")).one()
    orgs.set_kind(session, org, "call_center")
    session.commit()
    assert "not filed" in as_officer.get("/admin/delegations").get_data(as_text=True)


def test_viewers_see_kinds_but_cannot_change_them(as_viewer: FlaskClient, line: None) -> None:
    page = as_viewer.get("/admin/orgs/bluesky-cc").get_data(as_text=True)
    assert "merchant" in page
    resp = post_form(as_viewer, "/admin/orgs/bluesky-cc", "/admin/orgs/bluesky-cc/kind",
                     {"org-kind": "call_center"})  # fmt: skip
    assert resp.status_code == 403
    assert "Save the kind" not in page


def test_the_lookup_log_is_visible_to_the_regulator(
    as_viewer: FlaskClient, client: FlaskClient, session: Session, world: World
) -> None:
    org = orgs.create_org(session, "callguard", "CallGuard", "lookup")
    key = orgs.create_key(session, org)[1]
    attest(session, "acme", "10690001")  # a lookup names only an attested address
    session.commit()
    app = Api(client, key)
    assert app.get("/lookup?number=10690001").status_code == 200
    assert app.get("/lookup?number=10690099").status_code == 200
    page = as_viewer.get("/admin/lookups").get_data(as_text=True)
    assert "callguard" in page
    assert "10690099" in page
    assert "acme-cards" in page
