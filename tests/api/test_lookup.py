"""Who is calling me (号码标记): phone apps look up calling numbers with a key of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.complaints import services as complaints
from registry.lookup.models import LookupLog
from registry.orgs import services as orgs
from registry.senders import services as senders
from registry.timeutil import utcnow
from tests.api.test_filings import FILING
from tests.conftest import Api, other_app
from tests.factories import HOLDER, HOLDER2, World, attest


@pytest.fixture(autouse=True)
def attested(request: pytest.FixtureRequest) -> None:
    """The world's SMS ports, connected (so attested) by the world's carrier."""
    if "world" not in request.fixturenames:
        return  # a test that builds its own registry (another app) attests there
    session = request.getfixturevalue("session")
    request.getfixturevalue("world")
    attest(session, "acme", "10690001")
    attest(session, "shop", "10690002")
    session.commit()


@pytest.fixture
def app_key(session: Session) -> str:
    """A phone app's organization (role lookup) and its key."""
    org = orgs.create_org(session, "callguard", "CallGuard App", "lookup")
    key = orgs.create_key(session, org)[1]
    session.commit()
    return key


@pytest.fixture
def phone_app(client: FlaskClient, app_key: str) -> Api:
    return Api(client, app_key)


@pytest.fixture
def line(session: Session, world: World) -> int:
    """Acme's sender with a landline number, delegated to a call center with a filing."""
    sender, _ = senders.create_sender(
        session, world.org_ids["acme"], "acme-cc-line", "Acme Cards Line", "finance",
        ["+862160000004"],
    )  # fmt: skip
    attest(session, "acme", "+862160000004")
    orgs.create_org(session, "bluesky-cc", "Blue Sky Call Center", "sender", kind="call_center")
    session.commit()
    return sender.id or 0


def look(api: Api, number: str) -> Any:
    return api.client.get("/api/v1/lookup", query_string={"number": number}, headers=api.headers())


@pytest.mark.parametrize(
    "number", ["+862160000004", "021 6000 0004", "(021) 6000-0004", "0086 21 6000 0004",
               "＋８６ ２１ ６０００ ０００４"],
)  # fmt: skip
def test_any_accepted_form_of_the_number_finds_the_sender(
    phone_app: Api, line: int, number: str
) -> None:
    resp = look(phone_app, number)
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    assert answer["registered"] is True
    assert answer["number"] == "+862160000004"
    assert answer["sender"] == {
        "code": "acme-cc-line", "name": "Acme Cards Line", "category": "finance",
        "suspended": False,
    }  # fmt: skip
    assert answer["organization"] == {"slug": "acme", "name": "Acme", "kind": "merchant"}
    assert answer["complaints"] == 0


def test_an_sms_port_is_found_by_its_digits(phone_app: Api, world: World) -> None:
    answer = look(phone_app, "1069 0001").get_json()
    assert (answer["number"], answer["sender"]["code"]) == ("10690001", "acme-cards")


def test_a_claim_nobody_attested_names_no_one(
    phone_app: Api, world: World, session: Session
) -> None:
    """A sender's typed address names it only once a carrier attests it (issue 15)."""
    senders.create_sender(session, world.org_ids["shop"], "shop-claim", "Shop Claim", "retail",
                          ["10690777"])  # fmt: skip
    session.commit()
    answer = look(phone_app, "1069 0777").get_json()
    assert answer["registered"] is False
    assert "sender" not in answer


def test_an_unknown_number_is_not_registered_to_any_sender(phone_app: Api, world: World) -> None:
    answer = look(phone_app, "+86 21 6000 9999").get_json()
    assert answer["registered"] is False
    assert answer["message"] == "not registered to any sender"
    assert answer["number"] == "+862160009999"
    assert "sender" not in answer


@pytest.mark.parametrize("number", ["hello", "", "   ", "+86-21-ABCD", "1" * 70, "12"])
def test_garbage_is_refused_in_the_envelope(phone_app: Api, world: World, number: str) -> None:
    resp = look(phone_app, number)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] in ("invalid_phone", "validation_error")
    assert resp.get_json()["error"]["details"][0]["field"] == "number"


def test_a_missing_or_nul_number_is_refused(phone_app: Api, world: World) -> None:
    resp = phone_app.client.get("/api/v1/lookup", headers=phone_app.headers())
    assert resp.status_code == 422
    assert look(phone_app, "1069\x000001").status_code == 422


def test_the_filed_business_explains_who_calls_for_whom(
    acme: Api, phone_app: Api, line: int
) -> None:
    made = acme.post(
        "/delegations",
        {"agent": "bluesky-cc", "senders": ["acme-cc-line"], "scopes": ["check"],
         "filing": FILING},
    )  # fmt: skip
    assert made.status_code == 201
    business = look(phone_app, "021 6000 0004").get_json()["businesses"]
    assert business == [
        {
            "agent": {"slug": "bluesky-cc", "name": "Blue Sky Call Center", "kind": "call_center"},
            "principal": {"slug": "acme", "name": "Acme", "kind": "merchant"},
            "business_name": "credit cards",
            "business_type": "marketing",
        }
    ]
    # Revoked: the business no longer speaks for the number, at once.
    acme.post(f"/delegations/{made.get_json()['id']}/revoke")
    assert look(phone_app, "021 6000 0004").get_json()["businesses"] == []


def test_complaints_against_the_sender_are_counted(
    phone_app: Api, world: World, session: Session
) -> None:
    for phone in (HOLDER, HOLDER2):
        complaints.file_complaint(session, phone, "10690001", "sms", utcnow(), "spam")
    session.commit()
    assert look(phone_app, "10690001").get_json()["complaints"] == 2


def test_the_api_never_reveals_what_any_holder_was_told(
    acme: Api, phone_app: Api, world: World
) -> None:
    acme.check(HOLDER)
    resp = look(phone_app, "10690001")
    body = resp.get_data(as_text=True)
    answer = resp.get_json()
    assert set(answer) == {
        "number", "registered", "message", "sender", "organization", "businesses",
        "complaints", "lookup",
    }  # fmt: skip
    for secret in (HOLDER, HOLDER[3:], "no_consent", "deny", "checked"):
        assert secret not in body
    # A holder's number passed along is refused, not answered about.
    extra = phone_app.client.get(
        "/api/v1/lookup", query_string={"number": "10690001", "phone": HOLDER},
        headers=phone_app.headers(),
    )  # fmt: skip
    assert extra.status_code == 200
    assert HOLDER not in extra.get_data(as_text=True)


def test_only_lookup_keys_may_look_up_and_lookup_keys_nothing_else(
    acme: Api, phone_app: Api, world: World
) -> None:
    resp = look(acme, "10690001")
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"
    for method, path, body in (
        ("post", "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}),
        ("get", f"/numbers/{HOLDER}/reassigned?since=2020-01-01", None),
        ("get", "/consents", None),
        ("get", "/changes", None),
        ("get", "/delegations", None),
    ):
        call = getattr(phone_app, method)
        resp = call(path, body) if body is not None else call(path)
        assert resp.status_code == 403, path
        assert resp.get_json()["error"]["code"] == "forbidden"
    no_key = phone_app.client.get("/api/v1/lookup?number=10690001")
    assert no_key.status_code == 401


def test_every_lookup_is_logged_without_the_holder(
    phone_app: Api, world: World, session: Session
) -> None:
    look(phone_app, "10690001")
    look(phone_app, "+862160009999")
    rows = session.scalars(select(LookupLog).order_by(LookupLog.id)).all()
    assert [(r.address, r.via, r.sender_id is not None) for r in rows] == [
        ("10690001", "api", True),
        ("+862160009999", "api", False),
    ]
    assert all(r.organization_id for r in rows)


def _world_and_key() -> tuple[World, str]:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        world = factories.world(s)
        org = orgs.create_org(s, "callguard", "CallGuard App", "lookup")
        key = orgs.create_key(s, org)[1]
        s.commit()
        return world, key


@pytest.mark.live
def test_lookups_are_limited_per_key_and_per_client(app: Flask, tmp_path: Path) -> None:
    _, key = _world_and_key()
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path,
        REGISTRY_RATELIMIT_LOOKUP_KEY="3 per minute",
        REGISTRY_RATELIMIT_LOOKUP_CLIENT="5 per minute",
        REGISTRY_RATELIMIT_STORAGE_URL="memory://",
    ) as limited:  # fmt: skip
        from registry.extensions import db

        with db.session() as s:
            org = orgs.create_org(s, "otherapp", "Other App", "lookup")
            other_key = orgs.create_key(s, org)[1]
            s.commit()
        client = limited.test_client()
        first, second = Api(client, key), Api(client, other_key)
        for _ in range(3):
            assert look(first, "10690001").status_code == 200
        refused = look(first, "10690001")
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 0
        # Another key from the same client has its own key budget, but the
        # client's budget (5) is shared and four calls were counted on it.
        assert look(second, "10690001").status_code == 200
        assert look(second, "10690001").status_code == 429
        # Another client address with the second key still gets through.
        other_client = limited.test_client()
        resp = other_client.get(
            "/api/v1/lookup?number=10690001",
            headers=second.headers(),
            environ_overrides={"REMOTE_ADDR": "10.0.0.9"},
        )
        assert resp.status_code == 200
        with db.session() as s:
            assert (
                s.scalar(select(func.count()).select_from(LookupLog)) == 5
            )  # refused ones are not lookups


def test_the_openapi_document_describes_lookups_and_filings(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    get = doc["paths"]["/api/v1/lookup"]["get"]
    assert get["parameters"] == [
        {"name": "number", "in": "query", "required": True, "schema": {"type": "string"}}
    ]
    assert {"200", "401", "403", "422", "429"} <= set(get["responses"])
    put = doc["paths"]["/api/v1/delegations/{delegation_id}/filing"]["put"]
    assert {"200", "403", "404", "409", "422"} <= set(put["responses"])
    assert "get" in doc["paths"]["/api/v1/delegations/{delegation_id}"]
    schemas = doc["components"]["schemas"]
    assert {"filing", "agent_kind", "filing_required"} <= set(
        schemas["DelegationOut"]["properties"]
    )
    assert "filing" in schemas["DelegationIn"]["properties"]
    assert set(schemas["LookupOut"]["properties"]) >= {"sender", "organization", "complaints"}


def test_a_suspended_sender_is_said_to_be_suspended(
    phone_app: Api, world: World, session: Session
) -> None:
    from datetime import timedelta

    from registry.senders.models import Sender

    sender = session.get(Sender, world.sender_ids["acme-cards"])
    assert sender is not None
    sender.suspended_until = utcnow() + timedelta(days=3)
    session.commit()
    assert look(phone_app, "10690001").get_json()["sender"]["suspended"] is True
    assert look(phone_app, "10690002").get_json()["sender"]["suspended"] is False
