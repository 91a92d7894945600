"""Only the holder speaks for the holder (issue 12, section 1; SPEC §8).

A consent becomes active only through channels the sender does not control:
the site, a one-time code, or a reply to the registry's own number that the
registry's gateway (role ``gateway``) brings. What a sender forwards from its
own port can only narrow its own reach; a "Y" or "START" it forwards is a claim.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.consent.models import Consent, OptOut
from registry.events.models import Event
from registry.orgs import services as orgs
from registry.senders import services as senders
from registry.sms.models import SmsMessage
from registry.subscribers.models import Subscriber
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

REGISTRY = "10690000"  # REGISTRY_SMS_NUMBER's default


@pytest.fixture(autouse=True)
def _pending_until_the_checks(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checks here ask at NOON in 2030 (inside the calling hours whatever the time
    # of day the suite runs): keep pending consents pending until then.
    settings = replace(app.config["REGISTRY"], consent_pending_days=3650)
    monkeypatch.setitem(app.config, "REGISTRY", settings)


def consent(api: Api, sender: str = "acme-cards", phone: str = HOLDER, **kw: object) -> dict:  # type: ignore[type-arg]
    """Record a consent as the sender would; pending until the holder confirms."""
    body = {"phone": phone, "sender": sender, "channels": ["sms"],
            "evidence": {"method": "web_form", "captured_at": utcnow().isoformat()}, **kw}  # fmt: skip
    resp = api.post("/consents", body)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"
    return resp.get_json()  # type: ignore[no-any-return]


def forward(api: Api, text: str, to: str = "10690001", phone: str = HOLDER):  # type: ignore[no-untyped-def]
    """Forward a reply the sender says it received at its port."""
    return api.post("/inbound-sms", {"from": phone, "to": to, "text": text})


def to_registry(gateway: Api, text: str, phone: str = HOLDER, to: str = REGISTRY):  # type: ignore[no-untyped-def]
    """Bring a reply the holder sent to the registry's own number."""
    return gateway.post("/gateway/inbound-sms", {"from": phone, "to": to, "text": text})


def ref_of(session: Session, consent_id: int) -> str:
    """Return the reference the registry's confirmation text gave this consent."""
    row = session.get(Consent, consent_id)
    assert row is not None
    assert row.reply_ref is not None
    return row.reply_ref


def claims(session: Session) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.type == "claim.recorded")))


def statuses(session: Session) -> list[str]:
    return list(session.scalars(select(Consent.status).order_by(Consent.id)))


# --- forged paths: a sender's port --------------------------------------------


@pytest.mark.parametrize("text", ["Y", "yes", "是", "同意"])
def test_a_forwarded_y_is_a_claim_and_the_consent_stays_pending(
    acme: Api, session: Session, world: World, text: str
) -> None:
    made = consent(acme)
    resp = forward(acme, text)
    assert resp.status_code == 200
    answer = resp.get_json()
    assert (answer["action"], answer["claimed"]) == ("claim_recorded", "confirm")
    assert REGISTRY in answer["reply"]  # tells the holder where a confirmation counts
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    history = acme.get(f"/consents/{made['id']}").get_json()["history"]
    assert [h["type"] for h in history] == ["created"]
    (claim,) = claims(session)
    assert (claim.phone, claim.sender_id) == (HOLDER, world.sender_ids["acme-cards"])
    assert (claim.actor, claim.via, claim.state) == ("org:acme", "sms", "claimed")


@pytest.mark.parametrize("text", ["START", "unstop"])
def test_a_forwarded_start_for_a_stranger_creates_no_consent(
    acme: Api, session: Session, text: str
) -> None:
    answer = forward(acme, text).get_json()
    assert (answer["action"], answer["claimed"]) == ("claim_recorded", "opt_in")
    assert acme.check(HOLDER)["reason"] == "no_consent"
    assert session.scalar(select(func.count()).select_from(Consent)) == 0
    assert len(claims(session)) == 1


def test_a_forwarded_start_after_an_opt_out_does_not_lift_it(acme: Api) -> None:
    assert forward(acme, "TD").get_json()["action"] == "opt_out"
    assert forward(acme, "START").get_json()["action"] == "claim_recorded"
    assert acme.check(HOLDER)["reason"] == "opted_out"


@pytest.mark.parametrize("text", ["STOPALL", "全部退订", "stop all"])
def test_stopall_to_a_port_refuses_only_that_organizations_senders(
    acme: Api, shop: Api, gateway: Api, session: Session, world: World, text: str
) -> None:
    # Acme has a second sender; ShopMall has the holder's confirmed consent.
    senders.create_sender(session, world.org_ids["acme"], "acme-loans", "Acme Loans", "finance", [])
    session.commit()
    consent(shop, "shop-deals")
    assert to_registry(gateway, "Y").get_json()["action"] == "confirm"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent"

    answer = forward(acme, text).get_json()
    assert answer["action"] == "opt_out_all"
    assert sorted(answer["opted_out"]) == ["acme-cards", "acme-loans"]
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER, sender="acme-loans", channel="voice")["reason"] == "opted_out"
    # Not global do-not-disturb: the other organization's consent still allows.
    assert shop.check(HOLDER, sender="shop-deals")["decision"] == "allow"
    holder = session.get(Subscriber, HOLDER)
    assert holder is None or not (holder.dnd_sms or holder.dnd_voice)
    assert shop.check(HOLDER2, sender="shop-deals")["reason"] == "no_consent"  # not dnd


def test_a_refusal_forwarded_by_a_port_is_honoured_at_once(acme: Api, gateway: Api) -> None:
    consent(acme)
    to_registry(gateway, "Y")
    assert acme.check(HOLDER)["reason"] == "consent"
    assert forward(acme, "退订").get_json()["opted_out"] == ["acme-cards"]
    assert acme.check(HOLDER)["reason"] == "opted_out"


def test_a_port_may_not_forward_to_the_registrys_number(acme: Api, session: Session) -> None:
    consent(acme)
    resp = forward(acme, "Y", to=REGISTRY)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["field"] == "to"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    assert claims(session) == []


def test_a_port_of_another_organization_is_refused(acme: Api, shop: Api) -> None:
    consent(acme)
    for text in ("Y", "STOPALL", "TD"):
        assert forward(shop, text, to="10690001").status_code == 403
    assert acme.check(HOLDER)["reason"] == "consent_pending"


# --- agents: only within their scopes ------------------------------------------


@pytest.fixture
def agent(client: FlaskClient, session: Session, world: World) -> Api:
    org = orgs.create_org(session, "callcenter-a", "Call Center A", "sender")
    key = orgs.create_key(session, org)[1]
    session.commit()
    return Api(client, key)


def delegate(acme: Api, scopes: list[str], senders: tuple[str, ...] = ("acme-cards",)) -> None:
    body = {"agent": "callcenter-a", "senders": list(senders), "scopes": scopes}
    assert acme.post("/delegations", body).status_code == 201


def test_an_agent_with_only_optout_cannot_confirm_or_resubscribe(
    acme: Api, agent: Api, session: Session
) -> None:
    consent(acme)
    delegate(acme, ["optout"])
    for text in ("Y", "START"):
        resp = forward(agent, text)
        assert resp.status_code == 403
        assert resp.get_json()["error"]["code"] == "forbidden"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    assert claims(session) == []
    # Its own scope still works: a refusal.
    assert forward(agent, "TD").get_json()["action"] == "opt_out"
    assert acme.check(HOLDER)["reason"] == "opted_out"


def test_an_agent_with_consent_still_only_records_a_claim(
    acme: Api, agent: Api, session: Session
) -> None:
    consent(acme)
    delegate(acme, ["consent"])
    answer = forward(agent, "Y").get_json()
    assert answer["action"] == "claim_recorded"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    (claim,) = claims(session)
    assert claim.agent_id is not None
    assert forward(agent, "TD").status_code == 403  # no optout scope: not even a refusal


def test_an_agents_stopall_covers_only_the_senders_it_may_refuse_for(
    acme: Api, agent: Api, session: Session, world: World
) -> None:
    senders.create_sender(session, world.org_ids["acme"], "acme-loans", "Acme Loans", "finance", [])
    session.commit()
    delegate(acme, ["optout"])
    answer = forward(agent, "STOPALL").get_json()
    assert answer["opted_out"] == ["acme-cards"]
    assert acme.check(HOLDER, sender="acme-loans")["reason"] == "no_consent"
    assert session.scalar(select(func.count()).select_from(OptOut)) == 1


# --- the holder's own voice: the registry's number, through the gateway -------


def test_the_confirmation_text_comes_from_the_registrys_number_with_a_reference(
    acme: Api, session: Session
) -> None:
    made = consent(acme)
    body = session.scalars(
        select(SmsMessage.body).where(SmsMessage.kind == "consent_confirm")
    ).one()
    assert REGISTRY in body
    assert f"Y {ref_of(session, made['id'])}" in body


def test_y_to_the_registry_confirms_the_only_pending_request(acme: Api, gateway: Api) -> None:
    made = consent(acme)
    answer = to_registry(gateway, "Y").get_json()
    assert answer == {"action": "confirm", "sender": "acme-cards", "consents": [made["id"]],
                      "reply": answer["reply"]}  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "consent"
    history = acme.get(f"/consents/{made['id']}").get_json()["history"]
    assert [(h["type"], h["via"]) for h in history][-1] == ("confirmed", "sms")


def test_with_several_pending_a_bare_y_asks_and_y_ref_confirms_that_one(
    acme: Api, shop: Api, gateway: Api, session: Session
) -> None:
    first, second = consent(acme), consent(shop, "shop-deals")
    answer = to_registry(gateway, "Y").get_json()
    assert (answer["action"], answer["consents"], answer["sender"]) == ("confirm", [], None)
    refs = [ref_of(session, first["id"]), ref_of(session, second["id"])]
    assert all(r in answer["reply"] for r in refs)
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent_pending"

    answer = to_registry(gateway, f"Y {refs[1]}").get_json()
    assert answer["consents"] == [second["id"]]
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    # Now only one waits: a bare "是" confirms it.
    assert to_registry(gateway, "是").get_json()["consents"] == [first["id"]]
    assert acme.check(HOLDER)["reason"] == "consent"


@pytest.mark.parametrize("form", ["Y {ref}", "y{ref}", "YES #{ref}", "同意 {ref}", "是{ref}。"])
def test_the_reference_is_read_as_people_type_it(
    acme: Api, shop: Api, gateway: Api, session: Session, form: str
) -> None:
    consent(acme)
    wanted = consent(shop, "shop-deals")
    answer = to_registry(gateway, form.format(ref=ref_of(session, wanted["id"]))).get_json()
    assert answer["consents"] == [wanted["id"]]
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_a_bare_td_refuses_the_only_request_and_otherwise_asks(
    acme: Api, gateway: Api, session: Session
) -> None:
    answer = to_registry(gateway, "TD").get_json()
    assert (answer["action"], answer["sender"]) == ("opt_out", None)
    assert session.scalar(select(func.count()).select_from(OptOut)) == 0
    consent(acme)
    assert to_registry(gateway, "退订").get_json()["sender"] == "acme-cards"
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert statuses(session) == ["revoked"]


def test_td_with_a_reference_refuses_the_request_and_opts_out(
    acme: Api, shop: Api, gateway: Api, session: Session
) -> None:
    first, _ = consent(acme), consent(shop, "shop-deals")
    answer = to_registry(gateway, f"TD {ref_of(session, first['id'])}").get_json()
    assert (answer["action"], answer["sender"]) == ("opt_out", "acme-cards")
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent_pending"
    assert statuses(session) == ["revoked", "pending"]


def test_td_naming_a_senders_port_opts_out_of_it(acme: Api, gateway: Api) -> None:
    answer = to_registry(gateway, "退订 10690001").get_json()
    assert (answer["action"], answer["sender"]) == ("opt_out", "acme-cards")
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="voice")["reason"] == "opted_out"


def test_stopall_to_the_registry_turns_on_do_not_disturb(
    acme: Api, shop: Api, gateway: Api, session: Session
) -> None:
    answer = to_registry(gateway, "全部退订").get_json()
    assert answer["action"] == "opt_out_all"
    holder = session.get(Subscriber, HOLDER)
    assert holder is not None
    assert holder.dnd_sms
    assert acme.check(HOLDER)["reason"] == "dnd"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "dnd"
    event = session.scalars(select(Event).where(Event.type == "preferences.changed")).one()
    assert (event.actor, event.via) == ("subscriber", "sms")


def test_start_to_the_registry_naming_a_sender_re_subscribes(
    acme: Api, gateway: Api, session: Session
) -> None:
    forward(acme, "TD")
    assert to_registry(gateway, "START").get_json()["sender"] is None  # which sender?
    assert acme.check(HOLDER)["reason"] == "opted_out"
    answer = to_registry(gateway, "START acme-cards").get_json()
    assert (answer["action"], answer["sender"]) == ("opt_in", "acme-cards")
    assert acme.check(HOLDER)["reason"] == "consent"
    row = session.get(Consent, answer["consents"][0])
    assert row is not None
    assert (row.status, row.evidence_method) == ("active", "sms_reply")


def test_a_reply_speaks_only_for_the_number_it_came_from(
    acme: Api, gateway: Api, session: Session
) -> None:
    made = consent(acme)
    answer = to_registry(gateway, "Y", phone=HOLDER2).get_json()
    assert answer["consents"] == []
    answer = to_registry(gateway, f"Y {ref_of(session, made['id'])}", phone=HOLDER2).get_json()
    assert answer["consents"] == []
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    to_registry(gateway, "全部退订", phone=HOLDER2)
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_unknown_references_and_help(acme: Api, gateway: Api) -> None:
    consent(acme)
    answer = to_registry(gateway, "Y 9999999").get_json()
    assert (answer["consents"], answer["sender"]) == ([], None)
    assert "9999999" in answer["reply"]
    assert to_registry(gateway, "HELP").get_json()["action"] == "help"
    assert to_registry(gateway, "hello").get_json()["action"] == "none"
    assert acme.check(HOLDER)["reason"] == "consent_pending"


# --- who may use the gateway ----------------------------------------------------


def test_a_senders_key_is_refused_at_the_gateway(
    acme: Api, shop: Api, carrier: Api, session: Session
) -> None:
    consent(acme)
    for api in (acme, shop, carrier):
        for text in ("Y", "全部退订", "START acme-cards"):
            resp = to_registry(api, text)
            assert resp.status_code == 403
            assert resp.get_json()["error"]["code"] == "forbidden"
    assert acme.check(HOLDER)["reason"] == "consent_pending"
    assert session.get(Subscriber, HOLDER) is None


def test_a_gateway_key_is_not_a_senders_key(gateway: Api, acme: Api) -> None:
    made = consent(acme)
    for path, body in (
        ("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}),
        ("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "Y"}),
        ("/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "x"}),
        ("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
                       "evidence": {"method": "web_form", "captured_at": utcnow().isoformat()}}),
        ("/senders", {"code": "gw-sender", "name": "GW", "category": "other", "addresses": []}),
        (f"/consents/{made['id']}/revoke", None),
    ):  # fmt: skip
        resp = gateway.post(path, body)
        assert resp.status_code == 403, path
        assert resp.get_json()["error"]["code"] == "forbidden"
    assert gateway.get("/consents").status_code == 403
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_the_gateway_brings_only_replies_to_the_registrys_number(gateway: Api, acme: Api) -> None:
    consent(acme)
    resp = to_registry(gateway, "Y", to="10690001")  # a sender's port
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "unknown_address"
    resp = to_registry(gateway, "Y", phone="not a phone")
    assert resp.get_json()["error"]["code"] == "invalid_phone"
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_a_revoked_gateway_key_is_refused(client: FlaskClient, acme: Api, session: Session) -> None:
    from tests.factories import gateway as make_gateway

    key = make_gateway(session, "old-gateway")
    orgs.revoke_key(session, re.split("_", key)[1])
    session.commit()
    consent(acme)
    assert to_registry(Api(client, key), "Y").status_code == 401
    assert acme.check(HOLDER)["reason"] == "consent_pending"


def test_the_openapi_document_describes_claims_and_the_gateway(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert "claim_recorded" in schemas["InboundOut"]["properties"]["action"]["enum"]
    assert {"claimed", "opted_out"} <= set(schemas["InboundOut"]["properties"])
    gateway = doc["paths"]["/api/v1/gateway/inbound-sms"]["post"]
    assert {"200", "401", "403", "422"} <= set(gateway["responses"])
    assert "opt_out_all" in schemas["GatewayInboundOut"]["properties"]["action"]["enum"]


@pytest.mark.parametrize(
    "text",
    ["STOP " + "x" * 1590, "Y" + "\x01" * 1599, "START " + "\x01" * 1590, "全部退订" * 400],
    ids=["stop", "y", "start", "stopall"],
)
def test_the_longest_replies_are_kept_not_a_server_error(
    acme: Api, gateway: Api, session: Session, text: str
) -> None:
    # An SMS reply may be 1,600 characters; the records keep its first part.
    assert forward(acme, text).status_code == 200
    assert to_registry(gateway, text).status_code == 200


def test_no_sender_may_present_the_registrys_number(acme: Api) -> None:
    body = {"code": "acme-fake", "name": "Anning", "category": "other", "addresses": ["1069 0000"]}
    resp = acme.post("/senders", body)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["details"][0]["field"] == "addresses.0"
    assert (
        acme.post("/inbound-sms", {"from": HOLDER, "to": REGISTRY, "text": "Y"}).status_code == 422
    )


def test_an_organization_sees_its_own_claims_in_its_feed_and_no_one_elses(
    acme: Api, shop: Api
) -> None:
    forward(acme, "Y")
    forward(shop, "START", to="10690002", phone=HOLDER2)
    own = [c for c in acme.get("/changes?after=0").get_json()["changes"] if c["type"] == "claim.recorded"]  # fmt: skip
    assert [(c["phone"], c["sender"], c["state"]) for c in own] == [
        (HOLDER, "acme-cards", "claimed")
    ]
