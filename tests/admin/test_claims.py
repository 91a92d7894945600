"""The regulator sees the claims senders forwarded (issue 12, section 1)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Api
from tests.factories import HOLDER


def test_claims_are_listed_for_staff_and_filtered_by_organization(
    as_viewer: FlaskClient, acme: Api
) -> None:
    acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "START"})
    page = as_viewer.get("/admin/claims").get_data(as_text=True)
    assert 'class="claim"' in page
    assert HOLDER in page
    assert "acme-cards" in page
    assert "opt_in" in page
    assert 'class="claim"' in as_viewer.get("/admin/claims?org=acme").get_data(as_text=True)
    assert 'class="claim"' not in as_viewer.get("/admin/claims?org=shop").get_data(as_text=True)
    assert as_viewer.get("/admin/claims?org=nobody").status_code == 404
    org_page = as_viewer.get("/admin/orgs/acme").get_data(as_text=True)
    assert "/admin/claims?org=acme" in org_page


def test_claims_need_a_signed_in_staff_member(client: FlaskClient, acme: Api) -> None:
    acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "Y"})
    resp = client.get("/admin/claims")
    assert resp.status_code in (302, 303)
    assert "/admin/login" in resp.headers["Location"]
