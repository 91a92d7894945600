"""Delegations in the console: list and filter, grant and revoke by officers, audited."""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.orgs.models import Delegation
from registry.timeutil import utcnow
from tests.admin.conftest import csrf, post_form
from tests.conftest import Api
from tests.factories import HOLDER, World


@pytest.fixture
def callcenter(client: FlaskClient, session: Session, world: World) -> Api:
    """A call center with an API key and no delegation yet."""
    org = orgs.create_org(session, "callcenter-b", "Call center B", "sender")
    _, key = orgs.create_key(session, org)
    session.commit()
    return Api(client, key)


def _grant(client: FlaskClient, **data: object) -> object:
    form = {"principal": "acme", "agent": "callcenter-b", "senders": "acme-cards",
            "scopes": ["check"], **data}  # fmt: skip
    return post_form(client, "/admin/delegations", "/admin/delegations", form)  # type: ignore[arg-type]


def _audit(session: Session, action: str) -> list[StaffAudit]:
    return list(session.scalars(select(StaffAudit).where(StaffAudit.action == action)))


def test_officer_grants_and_the_agent_may_check_at_once(
    as_officer: FlaskClient, callcenter: Api, session: Session
) -> None:
    assert callcenter.post(
        "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
    ).status_code == 403  # fmt: skip
    resp = _grant(as_officer, scopes=["check", "optout"])
    assert resp.status_code == 302, resp.get_data(as_text=True)
    answer = callcenter.check(HOLDER)
    assert (answer["agent"], answer["on_behalf_of"]) == ("callcenter-b", "acme")
    [entry] = _audit(session, "delegation.grant")
    assert entry.actor == "officer@regulator.example"
    data = json.loads(entry.data or "{}")
    assert (data["principal"], data["agent"], data["senders"], data["scopes"]) == (
        "acme", "callcenter-b", ["acme-cards"], ["check", "optout"],
    )  # fmt: skip
    page = as_officer.get("/admin/delegations").get_data(as_text=True)
    row = re.search(r'<tr id="delegation-\d+">.*?</tr>', page, re.S)
    assert row
    for text in ("acme", "callcenter-b", "<code>acme-cards</code>", "check, optout", "active",
                 "no end date"):  # fmt: skip
        assert text in row.group(0)


def test_officer_revokes_and_the_agent_is_refused_at_once(
    as_officer: FlaskClient, callcenter: Api, session: Session, world: World
) -> None:
    d = delegations.grant(session, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"])
    session.commit()
    callcenter.check(HOLDER)
    resp = post_form(as_officer, "/admin/delegations", f"/admin/delegations/{d.id}/revoke",
                     {"next": "/admin/orgs/acme"})  # fmt: skip
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/admin/orgs/acme")
    refused = callcenter.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    [entry] = _audit(session, "delegation.revoke")
    assert entry.subject == f"delegation:{d.id}"
    session.expire_all()
    assert session.get(Delegation, d.id).revoked_at is not None  # type: ignore[union-attr]
    again = post_form(as_officer, "/admin/delegations", f"/admin/delegations/{d.id}/revoke", {})
    assert again.status_code == 302
    assert "already revoked" in as_officer.get("/admin/delegations").get_data(as_text=True)
    assert len(_audit(session, "delegation.revoke")) == 1


def test_filters_by_principal_agent_and_state(
    as_viewer: FlaskClient, callcenter: Api, session: Session, world: World
) -> None:
    orgs.create_org(session, "sms-port", "SMS port", "platform")
    live = delegations.grant(
        session, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"]
    )
    gone = delegations.grant(session, world.org_ids["shop"], "sms-port", ["shop-deals"], ["optout"])
    old = delegations.grant(session, world.org_ids["acme"], "sms-port", ["acme-cards"], ["check"])
    delegations.revoke(session, world.org_ids["shop"], gone.id or 0)
    old.expires_at = utcnow()  # expired a moment ago
    session.commit()

    def ids(query: str) -> set[int]:
        page = as_viewer.get(f"/admin/delegations{query}")
        assert page.status_code == 200
        return {int(i) for i in re.findall(r'id="delegation-(\d+)"', page.get_data(as_text=True))}

    assert ids("") == {live.id, gone.id, old.id}
    assert ids("?principal=acme") == {live.id, old.id}
    assert ids("?agent=sms-port") == {gone.id, old.id}
    assert ids("?state=active") == {live.id}
    assert ids("?state=revoked") == {gone.id}
    assert ids("?state=expired") == {old.id}
    assert ids("?principal=acme&state=expired") == {old.id}
    assert as_viewer.get("/admin/delegations?state=gone").status_code == 400
    # The organization's page shows those where it is principal or agent.
    page = as_viewer.get("/admin/orgs/sms-port").get_data(as_text=True)
    assert set(map(int, re.findall(r'id="delegation-(\d+)"', page))) == {gone.id, old.id}


def test_viewer_sees_but_cannot_change(
    as_viewer: FlaskClient, callcenter: Api, session: Session, world: World
) -> None:
    d = delegations.grant(session, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"])
    session.commit()
    page = as_viewer.get("/admin/delegations").get_data(as_text=True)
    assert f'id="delegation-{d.id}"' in page
    assert "Grant delegation" not in page
    assert "/revoke" not in page
    assert 'href="/admin/delegations"' in page  # in the navigation
    token = csrf(as_viewer, "/admin/orgs")
    grant = as_viewer.post("/admin/delegations", data={
        "csrf_token": token, "principal": "acme", "agent": "callcenter-b",
        "senders": "acme-cards", "scopes": "check",
    })  # fmt: skip
    assert grant.status_code == 403
    revoke = as_viewer.post(f"/admin/delegations/{d.id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 403
    assert session.scalars(select(Delegation)).all() == [d]
    session.refresh(d)
    assert d.revoked_at is None
    assert not _audit(session, "delegation.grant")
    assert not _audit(session, "delegation.revoke")


def test_grant_errors_are_shown_on_the_form(
    as_officer: FlaskClient, callcenter: Api, session: Session
) -> None:
    cases = [
        ({"agent": "nobody"}, "no organization"),
        ({"agent": "acme"}, "cannot delegate to itself"),
        ({"senders": "shop-deals"}, "only the owner may delegate"),
        ({"senders": "no-such-sender"}, "unknown senders"),
        ({"scopes": []}, "Choose at least one scope"),
        ({"scopes": ["everything"]}, "not a valid choice"),
        ({"principal": "ghost"}, "no organization"),
        ({"expires_at": "2001-01-01T00:00"}, "in the future"),
    ]
    for data, message in cases:
        resp = _grant(as_officer, **data)
        assert resp.status_code == 422, data  # type: ignore[attr-defined]
        assert message in resp.get_data(as_text=True), data  # type: ignore[attr-defined]
    assert session.scalars(select(Delegation)).all() == []
    assert _grant(as_officer, csrf_token="forged").status_code == 400  # type: ignore[attr-defined]
    assert not _audit(session, "delegation.grant")


def test_grant_with_an_expiry(as_officer: FlaskClient, callcenter: Api, session: Session) -> None:
    resp = _grant(as_officer, expires_at="2099-06-30T18:00", senders="acme-cards,\nacme-cards")
    assert resp.status_code == 302
    d = session.scalars(select(Delegation)).one()
    assert d.expires_at is not None
    assert d.expires_at.isoformat() == "2099-06-30T18:00:00+00:00"  # read as UTC
    assert "2099-06-30 18:00" in as_officer.get("/admin/delegations").get_data(as_text=True)
