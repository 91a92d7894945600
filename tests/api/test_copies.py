"""Checks and opt-outs keep per-process copies of keys, senders and delegations: never past a change.

Every change here is made with plain SQL, as another worker process or the
console on another machine would make it: nothing tells this process. The
next check must still see it, because the facts query verifies the copies.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from registry import copies
from registry.orgs import services as orgs_services
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, World


@pytest.fixture(autouse=True)
def _cold_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copies, "_CALLERS", {})
    monkeypatch.setattr(copies, "_SENDERS", {})


def _agent(session: Session, client: FlaskClient) -> Api:
    """Create the call center "agent-cc" with a key; return its API client."""
    org = orgs_services.create_org(session, "agent-cc", "Agent", "sender")
    _, key = orgs_services.create_key(session, org)
    session.commit()
    return Api(client, key)


def _grant(acme: Api, scope: str) -> None:
    resp = acme.post(
        "/delegations", {"agent": "agent-cc", "senders": ["acme-cards"], "scopes": [scope]}
    )
    assert resp.status_code == 201, resp.get_json()


def _sql(session: Session, statement: str, **params: object) -> None:
    session.execute(text(statement), params)
    session.commit()


def test_copies_are_used(acme: Api) -> None:
    acme.check(HOLDER)
    assert len(copies._CALLERS) == 1
    assert len(copies._SENDERS) == 1


def test_revoked_key_is_refused_at_once(acme: Api, session: Session) -> None:
    acme.check(HOLDER)
    _sql(session, "UPDATE api_key SET revoked_at = :t", t=utcnow())
    resp = acme.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
    assert copies._CALLERS == {}
    # and a batch too
    resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER]})
    assert resp.status_code == 401


def test_suspended_sender_and_organization_at_once(
    acme: Api, session: Session, world: World
) -> None:
    assert acme.check(HOLDER, purpose="service")["reason"] == "not_marketing"
    later = utcnow() + timedelta(days=1)
    _sql(session, "UPDATE sender SET suspended_until = :t WHERE id = :i",
         t=later, i=world.sender_ids["acme-cards"])  # fmt: skip
    assert acme.check(HOLDER, purpose="service")["reason"] == "sender_suspended"
    _sql(session, "UPDATE sender SET suspended_until = NULL")
    assert acme.check(HOLDER, purpose="service")["reason"] == "not_marketing"
    _sql(session, "UPDATE organization SET suspended_until = :t WHERE id = :i",
         t=later, i=world.org_ids["acme"])  # fmt: skip
    assert acme.check(HOLDER, purpose="service")["reason"] == "sender_suspended"
    resp = acme.post(
        "/check/batch",
        {"sender": "acme-cards", "channel": "sms", "purpose": "service", "phones": [HOLDER]},
    )
    assert resp.get_json()["results"][0]["reason"] == "sender_suspended"


def test_a_suspension_that_ends_needs_no_change(acme: Api, session: Session, world: World) -> None:
    """Suspensions are judged at the time of the check, not when the copy was made."""
    soon = utcnow() + timedelta(seconds=1)
    _sql(session, "UPDATE sender SET suspended_until = :t WHERE id = :i",
         t=soon, i=world.sender_ids["acme-cards"])  # fmt: skip
    assert acme.check(HOLDER, purpose="service")["reason"] == "sender_suspended"
    import time

    time.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.05)
    assert acme.check(HOLDER, purpose="service")["reason"] == "not_marketing"


def test_changed_category_is_used_at_once(acme: Api, session: Session, world: World) -> None:
    assert acme.check(HOLDER)["category"] == "finance"
    _sql(session, "UPDATE sender SET category = 'retail' WHERE id = :i",
         i=world.sender_ids["acme-cards"])  # fmt: skip
    assert acme.check(HOLDER)["category"] == "retail"


def test_revoked_and_narrowed_delegation_at_once(
    acme: Api, client: FlaskClient, session: Session
) -> None:
    agent = _agent(session, client)
    _grant(acme, "check")
    assert agent.check(HOLDER)["on_behalf_of"] == "acme"
    # the scope taken away behind this process's back
    _sql(session, "UPDATE delegation SET scopes = 'optout'")
    resp = agent.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 403
    _sql(session, "UPDATE delegation SET scopes = 'check'")
    assert agent.check(HOLDER)["agent"] == "agent-cc"
    # expiry moved into the past
    _sql(session, "UPDATE delegation SET expires_at = :t", t=utcnow() - timedelta(seconds=1))
    resp = agent.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 403
    _sql(session, "UPDATE delegation SET expires_at = NULL")
    assert agent.check(HOLDER)["agent"] == "agent-cc"
    # revoked
    _sql(session, "UPDATE delegation SET revoked_at = :t", t=utcnow())
    resp = agent.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 403
    # the owner's own key is untouched
    assert acme.check(HOLDER)["reason"] == "no_consent"


def test_agent_suspended_at_once(acme: Api, client: FlaskClient, session: Session) -> None:
    agent = _agent(session, client)
    _grant(acme, "check")
    assert agent.check(HOLDER, purpose="service")["reason"] == "not_marketing"
    _sql(session, "UPDATE organization SET suspended_until = :t WHERE slug = 'agent-cc'",
         t=utcnow() + timedelta(days=1))  # fmt: skip
    assert agent.check(HOLDER, purpose="service")["reason"] == "sender_suspended"


def test_a_new_delegation_is_honoured_after_a_refusal(
    acme: Api, client: FlaskClient, session: Session
) -> None:
    agent = _agent(session, client)
    resp = agent.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 403
    _grant(acme, "check")
    assert agent.check(HOLDER)["agent"] == "agent-cc"


# --- opt-outs take the same copies, checked inside their own insert ----------

OPTOUT = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "api"}


def _optouts(session: Session) -> int:
    count = int(session.execute(text("SELECT count(*) FROM opt_out")).scalar_one())
    session.commit()  # end the read: committed for real on SQLite it holds the write lock
    return count


def test_opt_out_with_a_revoked_key_is_refused_and_writes_nothing(
    acme: Api, session: Session
) -> None:
    assert acme.post("/optouts", OPTOUT).status_code == 201
    _sql(session, "UPDATE api_key SET revoked_at = :t", t=utcnow())
    resp = acme.post("/optouts", OPTOUT)
    assert resp.status_code == 401
    assert _optouts(session) == 1


def test_opt_out_after_a_change_to_the_sender_is_recorded_afresh(
    acme: Api, session: Session, world: World
) -> None:
    assert acme.post("/optouts", OPTOUT).status_code == 201
    _sql(session, "UPDATE sender SET suspended_until = :t WHERE id = :i",
         t=utcnow() + timedelta(days=1), i=world.sender_ids["acme-cards"])  # fmt: skip
    # a suspended sender must still honour refusals: recorded, from fresh rows
    assert acme.post("/optouts", OPTOUT).status_code == 201
    assert _optouts(session) == 2
    assert acme.check(HOLDER)["reason"] == "sender_suspended"


def test_delegated_opt_out_reads_afresh_and_honours_scope(
    acme: Api, client: FlaskClient, session: Session
) -> None:
    agent = _agent(session, client)
    _grant(acme, "optout")
    assert agent.post("/optouts", OPTOUT).status_code == 201
    _sql(session, "UPDATE delegation SET scopes = 'check'")
    assert agent.post("/optouts", OPTOUT).status_code == 403
    assert _optouts(session) == 1
