"""Business filings (业务备案) of delegations: required for call centers and ports, the principal's alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from registry.orgs import services as orgs
from registry.senders import services as senders
from tests.conftest import Api
from tests.factories import World

FILING: dict[str, Any] = {
    "business_name": "credit cards",
    "business_type": "marketing",
    "addresses": ["021 6000 0004"],
    "targets": "existing card holders of Acme Bank",
    "content": "card upgrade offers",
    "contact_name": "Wang Li",
    "contact_phone": "131 0000 1234",
}


@pytest.fixture
def parties(client: FlaskClient, session: Session, world: World) -> dict[str, Api]:
    """A call center (kind call_center), an ordinary agent, and a stranger, with keys."""
    keys = {}
    for slug, kind in (("bluesky-cc", "call_center"), ("plain-agent", "merchant"),
                       ("stranger", "merchant")):  # fmt: skip
        org = orgs.create_org(session, slug, slug.title(), "sender", kind=kind)
        keys[slug] = orgs.create_key(session, org)[1]
    senders.create_sender(
        session, world.org_ids["acme"], "acme-cc-line", "Acme Cards Line", "finance",
        ["+862160000004"],
    )  # fmt: skip
    session.commit()
    return {slug: Api(client, key) for slug, key in keys.items()}


def delegate(acme: Api, agent: str, **kw: Any) -> Any:
    return acme.post(
        "/delegations",
        {"agent": agent, "senders": ["acme-cc-line"], "scopes": ["check"], **kw},
    )


def test_a_call_center_cannot_be_delegated_to_without_a_filing(
    acme: Api, parties: dict[str, Api]
) -> None:
    resp = delegate(acme, "bluesky-cc")
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "filing"
    # An ordinary agent needs none.
    plain = delegate(acme, "plain-agent")
    assert plain.status_code == 201
    assert plain.get_json()["filing"] is None
    assert plain.get_json()["filing_required"] is False


def test_the_filing_is_stored_normalised_and_the_agent_reads_it(
    acme: Api, parties: dict[str, Api]
) -> None:
    resp = delegate(acme, "bluesky-cc", filing=FILING)
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()
    assert made["agent_kind"] == "call_center"
    assert made["filing_required"] is True
    filing = made["filing"]
    # Any accepted form of the number finds the registered address; the contact in E.164.
    assert filing["addresses"] == ["+862160000004"]
    assert filing["contact_phone"] == "+8613100001234"
    assert filing["business_name"] == "credit cards"
    agent_view = parties["bluesky-cc"].get(f"/delegations/{made['id']}")
    assert agent_view.status_code == 200
    assert agent_view.get_json()["filing"] == filing
    listed = parties["bluesky-cc"].get("/delegations").get_json()["delegations"]
    assert listed[0]["filing"] == filing


def test_only_the_principal_may_alter_the_filing(acme: Api, parties: dict[str, Api]) -> None:
    made = delegate(acme, "bluesky-cc", filing=FILING).get_json()
    path = f"/delegations/{made['id']}/filing"
    changed = {**FILING, "business_name": "card instalments"}
    # The agent reads, never writes; a stranger neither reads nor writes.
    for who in ("bluesky-cc", "stranger"):
        resp = parties[who].client.put(
            f"/api/v1{path}", json=changed, headers=parties[who].headers()
        )
        assert resp.status_code == 403, who
        assert resp.get_json()["error"]["code"] == "forbidden"
    stranger = parties["stranger"].get(f"/delegations/{made['id']}")
    assert stranger.status_code == 403
    assert "credit cards" not in stranger.get_data(as_text=True)
    # Nothing was changed by the refused attempts; the principal's change takes.
    assert acme.get(f"/delegations/{made['id']}").get_json()["filing"]["business_name"] == (
        "credit cards"
    )
    resp = acme.client.put(f"/api/v1{path}", json=changed, headers=acme.headers())
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["filing"]["business_name"] == "card instalments"
    assert (
        acme.client.put(
            "/api/v1/delegations/999999/filing", json=changed, headers=acme.headers()
        ).status_code
        == 404
    )


def test_a_revoked_delegation_keeps_its_filing_unchanged(
    acme: Api, parties: dict[str, Api]
) -> None:
    made = delegate(acme, "bluesky-cc", filing=FILING).get_json()
    acme.post(f"/delegations/{made['id']}/revoke")
    resp = acme.client.put(
        f"/api/v1/delegations/{made['id']}/filing", json=FILING, headers=acme.headers()
    )
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"addresses": ["10690002"]}, "unknown_address", "filing.addresses.0"),  # shop's port
        ({"addresses": ["not a number"]}, "invalid_phone", "filing.addresses.0"),
        ({"contact_phone": "12"}, "invalid_phone", "filing.contact_phone"),
        ({"business_type": "pyramid"}, "validation_error", None),
        ({"business_name": "   "}, "validation_error", "filing.business_name"),
        ({"addresses": []}, "validation_error", None),
        ({"content": "x" * 2001}, "validation_error", None),
        ({"targets": "a\x00b"}, "validation_error", None),
    ],
)
def test_bad_filings_are_refused_in_the_envelope_and_nothing_is_granted(
    acme: Api, parties: dict[str, Api], change: dict[str, Any], code: str, field: str | None
) -> None:
    resp = delegate(acme, "bluesky-cc", filing={**FILING, **change})
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error["details"][0]["field"] == field
    assert acme.get("/delegations").get_json()["delegations"] == []


def test_garbage_bodies_are_400(acme: Api, parties: dict[str, Api]) -> None:
    made = delegate(acme, "plain-agent").get_json()
    resp = acme.client.put(
        f"/api/v1/delegations/{made['id']}/filing",
        data=b"{not json",
        headers={**acme.headers(), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "bad_request"


def test_an_ordinary_agent_may_be_given_a_filing_later(acme: Api, parties: dict[str, Api]) -> None:
    made = delegate(acme, "plain-agent").get_json()
    resp = acme.client.put(
        f"/api/v1/delegations/{made['id']}/filing", json=FILING, headers=acme.headers()
    )
    assert resp.status_code == 200
    assert resp.get_json()["filing"]["addresses"] == ["+862160000004"]


@pytest.mark.live
def test_parallel_alterations_leave_one_whole_filing(app: Flask) -> None:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        world = factories.world(s)
        senders.create_sender(s, world.org_ids["acme"], "acme-cc-line", "Line", "finance",
                              ["+862160000004", "+862160000005"])  # fmt: skip
        orgs.create_org(s, "plain-agent", "Plain", "sender")
        s.commit()
    acme = Api(app.test_client(), world.keys["acme"])
    # No filing yet: the first ones race to create it.
    made = delegate(acme, "plain-agent").get_json()
    path = f"/api/v1/delegations/{made['id']}/filing"
    variants = [
        {**FILING, "business_name": f"business {i}", "addresses": [f"+86216000000{4 + i % 2}"]}
        for i in range(8)
    ]

    def put(body: dict[str, Any]) -> int:
        client = app.test_client()
        return client.put(path, json=body, headers=acme.headers()).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(put, variants))
    assert statuses == [200] * 8
    final = acme.get(f"/delegations/{made['id']}").get_json()["filing"]
    # One alteration, whole: its name and its own address, nothing mixed.
    i = int(final["business_name"].split()[-1])
    assert final["addresses"] == variants[i]["addresses"]
