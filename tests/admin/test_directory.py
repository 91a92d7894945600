"""Organizations, senders and keys from the console, through the CLI's services."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.orgs.models import Organization
from tests.admin.conftest import csrf, post_form


def test_officer_creates_org_sender_and_key_that_works(
    as_officer: FlaskClient, client: FlaskClient
) -> None:
    resp = post_form(as_officer, "/admin/orgs", "/admin/orgs",
                     {"slug": "newbank", "name": "New Bank", "role": "sender"})  # fmt: skip
    assert resp.status_code == 302
    resp = post_form(as_officer, "/admin/orgs/newbank", "/admin/orgs/newbank/senders",
                     {"code": "newbank-cards", "name": "New Bank Cards", "category": "finance",
                      "addresses": "10695555\n+862160005555"})  # fmt: skip
    assert resp.status_code == 302
    page = post_form(
        as_officer, "/admin/orgs/newbank", "/admin/orgs/newbank/keys", {"name": "dialer"}
    )
    assert page.status_code == 201
    key = re.search(r'<code id="new-key">([^<]+)</code>', page.get_data(as_text=True))
    assert key
    api = client.get("/api/v1/senders", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert api.status_code == 200
    assert [s["code"] for s in api.get_json()["senders"]] == ["newbank-cards"]
    prefix = key.group(1).split("_")[1]
    revoke = post_form(
        as_officer, "/admin/orgs/newbank", f"/admin/orgs/newbank/keys/{prefix}/revoke", {}
    )
    assert revoke.status_code == 302
    again = client.get("/api/v1/senders", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert again.status_code == 401


def test_key_is_not_in_the_audit_trail(as_officer: FlaskClient, session: Session, world) -> None:  # type: ignore[no-untyped-def]
    page = post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/keys", {"name": ""})
    key = re.search(r'<code id="new-key">([^<]+)</code>', page.get_data(as_text=True))
    assert key
    data = " ".join(d or "" for d in session.scalars(select(StaffAudit.data)))
    assert key.group(1) not in data


def test_bad_input_is_shown_not_a_500(as_officer: FlaskClient, session: Session, world) -> None:  # type: ignore[no-untyped-def]
    bad = post_form(
        as_officer,
        "/admin/orgs",
        "/admin/orgs",
        {"slug": "Bad Slug!", "name": "x", "role": "sender"},
    )
    assert bad.status_code == 422
    dup = post_form(
        as_officer, "/admin/orgs", "/admin/orgs", {"slug": "acme", "name": "x", "role": "sender"}
    )
    assert dup.status_code == 422
    assert "exists" in dup.get_data(as_text=True)
    role = post_form(
        as_officer, "/admin/orgs", "/admin/orgs", {"slug": "okslug", "name": "x", "role": "god"}
    )
    assert role.status_code == 422
    sender = post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/senders",
                       {"code": "acme-cards", "name": "dup", "category": "finance", "addresses": "1069x"})  # fmt: skip
    assert sender.status_code == 422
    assert as_officer.get("/admin/orgs/no-such-org").status_code == 404
    revoke = post_form(as_officer, "/admin/orgs/acme", "/admin/orgs/acme/keys/ffffffff/revoke", {})
    assert revoke.status_code == 302
    assert session.scalar(select(Organization).where(Organization.slug == "okslug")) is None


def test_viewer_sees_no_forms_and_cannot_post(as_viewer: FlaskClient, world) -> None:  # type: ignore[no-untyped-def]
    page = as_viewer.get("/admin/orgs/acme").get_data(as_text=True)
    assert "Create API key" not in page
    token = csrf(as_viewer, "/admin/orgs")
    resp = as_viewer.post(
        "/admin/orgs", data={"csrf_token": token, "slug": "x1", "name": "x", "role": "sender"}
    )
    assert resp.status_code == 403
