"""Outsourced contact: agents acting for a principal's senders (issue 8)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.checks.models import CheckLog
from registry.events.models import Event
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, World


@pytest.fixture
def agents(client: FlaskClient, session: Session, world: World) -> tuple[Api, Api]:
    """Two call centers with keys."""
    keys = []
    for slug in ("callcenter-a", "callcenter-b"):
        org = orgs.create_org(session, slug, slug.upper(), "sender")
        keys.append(orgs.create_key(session, org)[1])
    session.commit()
    return Api(client, keys[0]), Api(client, keys[1])


def grant(acme: Api, agent: str, scopes: list[str], **kw: object) -> dict:  # type: ignore[type-arg]
    resp = acme.post(
        "/delegations", {"agent": agent, "senders": ["acme-cards"], "scopes": scopes, **kw}
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def test_agent_check_is_allowed_and_attributed(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    agent, _ = agents
    assert (
        agent.post(
            "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
        ).status_code
        == 403
    )
    grant(acme, "callcenter-a", ["check"])
    answer = agent.check(HOLDER)
    assert (answer["agent"], answer["on_behalf_of"]) == ("callcenter-a", "acme")
    receipt = agent.get(f"/receipts/{answer['check_id']}").get_json()
    assert (receipt["agent"], receipt["on_behalf_of"]) == ("callcenter-a", "acme")
    log = session.scalars(select(CheckLog)).one()
    agent_id = session.scalar(select(Organization.id).where(Organization.slug == "callcenter-a"))
    assert (log.agent_id, log.organization_id) == (
        agent_id,
        session.scalar(select(Organization.id).where(Organization.slug == "acme")),
    )


def test_scope_check_only_forbids_optouts(acme: Api, agents: tuple[Api, Api]) -> None:
    agent, _ = agents
    grant(acme, "callcenter-a", ["check"])
    resp = agent.post(
        "/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    )
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"


def test_revoke_takes_effect_at_once_and_owner_still_works(
    acme: Api, agents: tuple[Api, Api]
) -> None:
    agent, _ = agents
    delegation = grant(acme, "callcenter-a", ["check"])
    agent.check(HOLDER)
    revoked = acme.post(f"/delegations/{delegation['id']}/revoke")
    assert revoked.get_json()["active"] is False
    assert (
        agent.post(
            "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
        ).status_code
        == 403
    )
    assert acme.check(HOLDER)["reason"] == "no_consent"


def test_expiry_is_honoured_at_the_second(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    from registry.orgs.models import Delegation

    agent, _ = agents
    delegation = grant(
        acme, "callcenter-a", ["check"], expires_at=(utcnow() + timedelta(hours=1)).isoformat()
    )
    agent.check(HOLDER)
    row = session.get(Delegation, delegation["id"])
    assert row is not None
    row.expires_at = utcnow() + timedelta(seconds=1)
    session.commit()
    agent.check(HOLDER)
    row.expires_at = utcnow() - timedelta(milliseconds=1)
    session.commit()
    assert (
        agent.post(
            "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
        ).status_code
        == 403
    )


def test_agent_optout_binds_every_other_agent(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    a, b = agents
    grant(acme, "callcenter-a", ["check", "optout"])
    grant(acme, "callcenter-b", ["check"])
    resp = a.post(
        "/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    )
    assert resp.status_code == 201
    assert b.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER)["reason"] == "opted_out"
    event = session.scalars(select(Event).where(Event.type == "optout.recorded")).one()
    assert event.actor == "org:callcenter-a"
    assert event.organization_id != event.agent_id
    assert event.agent_id is not None


def test_agent_consents_and_sms_replies_name_both(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    a, _ = agents
    grant(acme, "callcenter-a", ["consent", "optout"])
    resp = a.post("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["voice"],
                                "evidence": {"method": "call_recording", "captured_at": utcnow().isoformat()}})  # fmt: skip
    assert resp.status_code == 201
    assert acme.get(f"/consents/{resp.get_json()['id']}").status_code == 200
    reply = a.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "TD"})
    assert reply.get_json()["action"] == "opt_out"
    created = session.scalars(select(Event).where(Event.type == "consent.created")).one()
    assert created.agent_id is not None
    assert created.organization_id == session.scalar(
        select(Organization.id).where(Organization.slug == "acme")
    )


def test_suspended_principal_and_suspended_agent(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    a, _ = agents
    grant(acme, "callcenter-a", ["check"])
    for slug in ("acme", "callcenter-a"):
        org = session.scalar(select(Organization).where(Organization.slug == slug))
        assert org is not None
        org.suspended_until = utcnow() + timedelta(days=1)
        session.commit()
        assert a.check(HOLDER)["reason"] == "sender_suspended"
        org.suspended_until = None
        session.commit()
    assert a.check(HOLDER)["reason"] == "no_consent"


def test_only_owner_may_delegate_and_bad_grants(
    acme: Api, shop: Api, agents: tuple[Api, Api]
) -> None:
    resp = shop.post(
        "/delegations", {"agent": "callcenter-a", "senders": ["acme-cards"], "scopes": ["check"]}
    )
    assert resp.status_code == 403
    for body, code in (
        ({"agent": "nobody", "senders": ["acme-cards"], "scopes": ["check"]}, "validation_error"),
        ({"agent": "callcenter-a", "senders": ["ghost"], "scopes": ["check"]}, "validation_error"),
        (
            {"agent": "callcenter-a", "senders": ["acme-cards"], "scopes": ["everything"]},
            "validation_error",
        ),
        ({"agent": "acme", "senders": ["acme-cards"], "scopes": ["check"]}, "validation_error"),
        (
            {
                "agent": "callcenter-a",
                "senders": ["acme-cards"],
                "scopes": ["check"],
                "expires_at": "2001-01-01T00:00:00Z",
            },
            "validation_error",
        ),
    ):
        assert acme.post("/delegations", body).get_json()["error"]["code"] == code
    delegation = grant(acme, "callcenter-a", ["check"])
    assert shop.post(f"/delegations/{delegation['id']}/revoke").status_code == 403
    a, _ = agents
    listed = a.get("/delegations").get_json()["delegations"]
    assert [(d["principal"], d["agent"], d["senders"]) for d in listed] == [
        ("acme", "callcenter-a", ["acme-cards"])
    ]


def test_cli_grant_list_revoke(app: Flask, acme: Api, agents: tuple[Api, Api]) -> None:
    runner = app.test_cli_runner()
    out = runner.invoke(
        args=[
            "delegation",
            "grant",
            "acme",
            "callcenter-b",
            "--sender",
            "acme-cards",
            "--scope",
            "check",
        ]
    )
    assert out.exit_code == 0, out.output
    _, b = agents
    assert b.check(HOLDER)["agent"] == "callcenter-b"
    listing = runner.invoke(args=["delegation", "list", "acme"])
    assert "acme -> callcenter-b" in listing.output
    delegation_id = listing.output.split()[0]
    assert runner.invoke(args=["delegation", "revoke", delegation_id]).exit_code == 0
    assert (
        b.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}).status_code
        == 403
    )


def test_agent_sees_changes_only_with_the_changes_scope(
    acme: Api, agents: tuple[Api, Api], session: Session
) -> None:
    from registry.events import sealing

    a, b = agents
    grant(acme, "callcenter-a", ["check", "optout", "changes"])
    grant(acme, "callcenter-b", ["check", "optout"])
    assert (
        b.post(
            "/optouts",
            {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"},
        ).status_code
        == 201
    )
    sealing.seal(session)
    session.commit()
    seen_by_a = a.get("/changes?after=0").get_json()["changes"]
    assert [(c["type"], c["sender"]) for c in seen_by_a] == [("optout.recorded", "acme-cards")]
    assert b.get("/changes?after=0").get_json()["changes"] == []  # agent B lacks "changes"
