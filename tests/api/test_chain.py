"""The chain of responsibility (issue 15): carriers attest addresses, ``from`` proves the caller.

Through real HTTP: a carrier connects an organization at addresses (its
attestation), a check naming ``from`` is refused ``unregistered_caller``
unless the address is an attested, live address of that sender, a withdrawal
takes effect on the next check, a carrier checks at its switch and sees the
complaints and sanctions about the organizations it connects, and every wrong
party is refused.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.checks.models import CheckLog
from registry.complaints import services as complaints
from registry.numbers import ranges
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from tests.conftest import NOON, Api
from tests.factories import HOLDER, World

PORT = "10690001"  # acme-cards' SMS port (tests/factories.py)
SHOP_PORT = "10690002"  # shop-deals'
LINE = "+862160000001"  # a Shanghai line, in no carrier's range
TELECOM_MOBILE = "+8613300133001"  # in telecom's +86133
FOREIGN = "+12025550123"  # in no range at all


def _carrier(client: FlaskClient, session: Session, slug: str, *prefixes: str) -> Api:
    org = orgs.create_org(session, slug, slug.title(), "carrier")
    _, key = orgs.create_key(session, org)
    for prefix in prefixes:
        ranges.assign(session, prefix, slug, "test")
    session.commit()
    return Api(client, key)


@pytest.fixture
def telecom(client: FlaskClient, session: Session, world: World) -> Api:
    """A second carrier, holding +86133."""
    return _carrier(client, session, "telecom", "+86133")


def connect(api: Api, org: str, *addresses: str, kind: str = "sms_port") -> list[dict]:  # type: ignore[type-arg]
    resp = api.post(
        "/connections", {"organization": org, "kind": kind, "addresses": list(addresses)}
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["connections"]  # type: ignore[no-any-return]


def check_from(api: Api, sender: str, caller: str, **kw: object) -> dict:  # type: ignore[type-arg]
    return api.check(HOLDER, sender=sender, purpose="service", **{"from": caller, **kw})  # type: ignore[no-any-return]


def error(resp: object) -> tuple[int, str]:
    body = resp.get_json()  # type: ignore[attr-defined]
    return resp.status_code, body["error"]["code"]  # type: ignore[attr-defined]


def test_unattested_address_cannot_be_used(acme: Api, carrier: Api) -> None:
    # Registered by acme, attested by nobody yet: not a usable calling address.
    answer = check_from(acme, "acme-cards", PORT)
    assert (answer["decision"], answer["reason"], answer["from"]) == (
        "deny", "unregistered_caller", PORT,
    )  # fmt: skip
    [made] = connect(carrier, "acme", PORT)
    assert (made["address"], made["sender"], made["organization"]) == (PORT, "acme-cards", "acme")
    answer = check_from(acme, "acme-cards", "1069 0001")  # any spacing: the port's digits
    assert (answer["decision"], answer["reason"]) == ("allow", "not_marketing")
    receipt = acme.get(f"/receipts/{answer['check_id']}").get_json()
    assert receipt["from"] == PORT
    # Without ``from`` nothing changes (it is optional by default).
    assert acme.check(HOLDER, purpose="service")["reason"] == "not_marketing"


def test_from_of_another_sender_is_unregistered_caller(acme: Api, shop: Api, carrier: Api) -> None:
    connect(carrier, "shop", SHOP_PORT)
    connect(carrier, "acme", PORT)
    # shop's attested port, presented by acme's sender: not acme's address.
    assert check_from(acme, "acme-cards", SHOP_PORT)["reason"] == "unregistered_caller"
    assert check_from(shop, "shop-deals", SHOP_PORT)["reason"] == "not_marketing"
    # The deny comes before marketing rules too (step 1a).
    answer = acme.check(HOLDER, **{"from": SHOP_PORT})
    assert answer["reason"] == "unregistered_caller"


def test_withdrawn_attestation_takes_effect_on_the_next_check(
    acme: Api, carrier: Api, session: Session
) -> None:
    [made] = connect(carrier, "acme", PORT)
    assert check_from(acme, "acme-cards", PORT)["decision"] == "allow"
    resp = carrier.post(f"/connections/{made['id']}/withdraw", {"reason": "contract ended"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["withdrawn_at"] is not None
    assert check_from(acme, "acme-cards", PORT)["reason"] == "unregistered_caller"
    # The batch answers on the same footing, and names ``from`` too.
    resp = acme.post(
        "/check/batch",
        {"sender": "acme-cards", "channel": "sms", "purpose": "service", "at": NOON,
         "phones": [HOLDER, "+8613900139000"], "from": PORT},
    )  # fmt: skip
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert {r["reason"] for r in body["results"]} == {"unregistered_caller"}
    assert body["from"] == PORT
    # Withdrawn twice: a conflict, nothing changes.
    assert error(carrier.post(f"/connections/{made['id']}/withdraw", {})) == (409, "conflict")
    # Connected again: usable again.
    connect(carrier, "acme", PORT)
    assert check_from(acme, "acme-cards", PORT)["decision"] == "allow"


def test_batch_names_from_and_logs_the_chain(acme: Api, carrier: Api, session: Session) -> None:
    connect(carrier, "acme", PORT)
    resp = acme.post(
        "/check/batch",
        {"sender": "acme-cards", "channel": "sms", "at": NOON, "phones": [HOLDER, "bad"],
         "from": "+86 10690001"[4:]},
    )  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    carrier_id = session.scalar(select(Organization.id).where(Organization.slug == "carrier"))
    rows = session.execute(select(CheckLog.address, CheckLog.carrier_id)).all()
    assert rows == [(PORT, carrier_id)]
    receipt = acme.get(f"/receipts/{resp.get_json()['check_id']}").get_json()
    assert receipt["from"] == PORT


def test_check_log_names_address_and_carrier(acme: Api, carrier: Api, session: Session) -> None:
    connect(carrier, "acme", PORT)
    check_from(acme, "acme-cards", PORT)
    acme.check(HOLDER)  # no ``from``: nothing named
    carrier_id = session.scalar(select(Organization.id).where(Organization.slug == "carrier"))
    rows = session.execute(
        select(CheckLog.address, CheckLog.carrier_id, CheckLog.asked_by_id).order_by(CheckLog.id)
    ).all()
    assert rows == [(PORT, carrier_id, None), (None, None, None)]


def test_carrier_a_cannot_touch_carrier_b(
    acme: Api, carrier: Api, telecom: Api, session: Session, client: FlaskClient
) -> None:
    [made] = connect(carrier, "acme", PORT)
    # Another carrier may not withdraw it, nor see it.
    assert error(telecom.post(f"/connections/{made['id']}/withdraw", {})) == (403, "forbidden")
    assert telecom.get("/connections").get_json()["connections"] == []
    assert check_from(acme, "acme-cards", PORT)["decision"] == "allow"
    # Nor connect an address in this carrier's range...
    acme_mobile = "+8613800138001"  # in carrier's +86138
    resp = telecom.post(
        "/connections", {"organization": "acme", "kind": "trunk", "addresses": [acme_mobile]}
    )
    assert error(resp) == (403, "not_your_number")
    # ...nor one this carrier connects already.
    resp = telecom.post(
        "/connections", {"organization": "acme", "kind": "sms_port", "addresses": [PORT]}
    )
    assert error(resp) == (409, "conflict")
    # A sender's key is not a carrier's.
    resp = acme.post("/connections", {"organization": "acme", "kind": "sms_port",
                                      "addresses": ["10690009"]})  # fmt: skip
    assert error(resp) == (403, "forbidden")
    assert error(acme.post("/network/check", {"phone": HOLDER, "from": PORT})) == (403, "forbidden")
    assert error(acme.get("/carrier/complaints")) == (403, "forbidden")


def test_duplicate_claim_and_bad_inputs_are_envelope_errors(
    acme: Api, shop: Api, carrier: Api, telecom: Api
) -> None:
    # shop tries to register acme's port: no address belongs to two senders.
    resp = shop.post("/senders", {"code": "shop-two", "name": "Shop", "category": "retail",
                                  "addresses": ["1069-0001"]})  # fmt: skip
    code, name = error(resp)
    assert (code, name) == (409, "conflict")
    assert "acme-cards" in resp.get_json()["error"]["message"]
    # Once acme's port is attested, another carrier cannot hand it to shop.
    connect(carrier, "acme", PORT)
    resp = telecom.post("/connections", {"organization": "shop", "kind": "sms_port",
                                         "addresses": [PORT]})  # fmt: skip
    assert error(resp) == (409, "conflict")
    # Malformed ``from``: invalid_phone on the field, nothing logged.
    for bad in ("not a number", "+86", "１２", "x" * 70):
        resp = acme.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms",
                                    "from": bad})  # fmt: skip
        status, code = error(resp)
        assert status == 422, (bad, resp.get_json())
    resp = acme.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms",
                                "from": "hello"})  # fmt: skip
    assert resp.get_json()["error"]["details"][0]["field"] == "from"
    # Bad connections: unknown kind, unknown organization, a carrier as the organization, twice.
    for payload, expected in (
        ({"organization": "acme", "kind": "wire", "addresses": ["10690007"]}, (422, "validation_error")),
        ({"organization": "nobody", "kind": "trunk", "addresses": ["10690007"]}, (404, "not_found")),
        ({"organization": "telecom", "kind": "trunk", "addresses": ["10690007"]}, (422, "validation_error")),
        ({"organization": "acme", "kind": "trunk", "addresses": ["10690007", "1069 0007"]}, (422, "validation_error")),
        ({"organization": "acme", "kind": "trunk", "addresses": ["call me"]}, (422, "invalid_phone")),
        ({"organization": "acme", "kind": "trunk", "addresses": []}, (422, "validation_error")),
    ):  # fmt: skip
        assert error(carrier.post("/connections", payload)) == expected, payload
    assert error(carrier.post("/connections/999999/withdraw", {})) == (404, "not_found")


def test_unattested_claim_does_not_lock_the_real_holder_out(
    acme: Api, shop: Api, carrier: Api, telecom: Api
) -> None:
    # shop claims a number in telecom's range first; telecom connects it for acme.
    resp = shop.post("/senders", {"code": "shop-two", "name": "Shop", "category": "retail",
                                  "addresses": [TELECOM_MOBILE]})  # fmt: skip
    assert resp.status_code == 201
    connect(telecom, "acme", TELECOM_MOBILE, kind="enterprise_line")
    # shop's claim is released: acme registers it and it is attested at once.
    resp = acme.post("/senders", {"code": "acme-line", "name": "Acme", "category": "finance",
                                  "addresses": ["133 0013 3001"]})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["addresses"] == [TELECOM_MOBILE]
    assert check_from(acme, "acme-line", "+86-133-0013-3001")["decision"] == "allow"
    assert check_from(shop, "shop-two", TELECOM_MOBILE)["reason"] == "unregistered_caller"


def test_require_from_makes_it_mandatory(
    app: Flask, acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "REGISTRY", replace(app.config["REGISTRY"], require_from=True))
    resp = acme.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert error(resp) == (400, "bad_request")
    assert resp.get_json()["error"]["details"][0]["field"] == "from"
    resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER]})
    assert error(resp) == (400, "bad_request")
    assert acme.check(HOLDER, **{"from": PORT})["reason"] == "unregistered_caller"


def test_suspended_address_is_sender_suspended(acme: Api, carrier: Api, session: Session) -> None:
    from registry.senders.models import SenderAddress

    connect(carrier, "acme", PORT)
    row = session.scalars(select(SenderAddress).where(SenderAddress.address == PORT)).one()
    row.suspended_until = utcnow() + timedelta(days=3)
    session.commit()
    assert check_from(acme, "acme-cards", PORT)["reason"] == "sender_suspended"
    # The sender itself, from no address or without ``from``, is not suspended.
    assert acme.check(HOLDER, purpose="service")["reason"] == "not_marketing"


def test_proof_by_code_for_an_address_outside_every_range(
    acme: Api, carrier: Api, session: Session, shop: Api
) -> None:
    resp = acme.post("/senders", {"code": "acme-us", "name": "Acme US", "category": "finance",
                                  "addresses": [FOREIGN, "+8613800138002"]})  # fmt: skip
    assert resp.status_code == 201
    assert check_from(acme, "acme-us", FOREIGN)["reason"] == "unregistered_caller"
    # In a carrier's range: that carrier attests it, not a code.
    resp = acme.post("/senders/acme-us/address-proofs", {"address": "+8613800138002"})
    assert error(resp) == (403, "not_your_number")
    # A port cannot read a code; another organization cannot ask for one.
    assert error(acme.post("/senders/acme-cards/address-proofs", {"address": PORT}))[0] == 422
    assert error(shop.post("/senders/acme-us/address-proofs", {"address": FOREIGN})) == (
        403, "forbidden",
    )  # fmt: skip
    resp = acme.post("/senders/acme-us/address-proofs", {"address": FOREIGN})
    assert resp.status_code == 201, resp.get_json()
    proof = resp.get_json()
    text = session.scalars(select(SmsMessage.body).where(SmsMessage.phone == FOREIGN)).one()
    code = text.split("验证码 ")[1][:6]
    wrong = "000000" if code != "000000" else "111111"
    path = f"/senders/acme-us/address-proofs/{proof['id']}/confirm"
    assert error(acme.post(path, {"code": wrong})) == (422, "validation_error")
    assert error(shop.post(path, {"code": code})) == (403, "forbidden")
    resp = acme.post(path, {"code": code})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["attested_via"] == "code"
    assert check_from(acme, "acme-us", FOREIGN)["decision"] == "allow"
    assert error(acme.post(path, {"code": code})) == (409, "conflict")


@pytest.fixture
def bluesky(client: FlaskClient, session: Session, world: World) -> Api:
    """A call center that acme delegates its checks to."""
    org = orgs.create_org(session, "bluesky", "Blue Sky Call Center", "sender")
    _, key = orgs.create_key(session, org)
    session.commit()
    return Api(client, key)


def test_agent_check_names_the_chain(
    acme: Api, bluesky: Api, carrier: Api, telecom: Api, session: Session
) -> None:
    resp = acme.post("/delegations", {"agent": "bluesky", "senders": ["acme-cards"],
                                      "scopes": ["check"]})  # fmt: skip
    assert resp.status_code == 201
    # The carrier connects the call center's trunk; acme adds it to the delegated sender.
    connect(carrier, "bluesky", LINE, kind="trunk")
    resp = acme.post("/senders/acme-cards/addresses", {"addresses": ["021 6000 0001"]})
    assert resp.status_code == 201, resp.get_json()
    statuses = {a["address"]: a for a in resp.get_json()["address_status"]}
    assert (statuses[LINE]["attested_via"], statuses[LINE]["carrier"]) == ("connection", "carrier")
    assert statuses[PORT]["attested_at"] is None
    # The agent, checking for acme-cards from its trunk: the chain is named and logged.
    answer = bluesky.check(HOLDER, **{"from": LINE})
    assert (answer["agent"], answer["on_behalf_of"], answer["reason"]) == (
        "bluesky", "acme", "no_consent",
    )  # fmt: skip
    ids = dict(session.execute(select(Organization.slug, Organization.id)).all())
    log = session.scalars(select(CheckLog)).one()
    assert (log.organization_id, log.agent_id, log.address, log.carrier_id) == (
        ids["acme"], ids["bluesky"], LINE, ids["carrier"],
    )  # fmt: skip
    # At the switch: the carrier asks with the called number and the calling number only.
    resp = carrier.post("/network/check", {"phone": HOLDER, "from": "021-60000001", "at": NOON})
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert (body["decision"], body["reason"], body["from"]) == ("deny", "no_consent", LINE)
    assert body["chain"] == {
        "sender": {"code": "acme-cards", "name": "Acme-Cards"},
        "merchant": {"slug": "acme", "name": "Acme"},
        "agent": {"slug": "bluesky", "name": "Blue Sky Call Center"},
        "carrier": {"slug": "carrier", "name": "Carrier"},
    }
    receipt = carrier.get(f"/receipts/{body['check_id']}").get_json()
    assert (receipt["from"], receipt["agent"], receipt["on_behalf_of"]) == (LINE, "bluesky", "acme")
    # The carrier's check is logged as the carrier's, never as the sender asking first.
    network = session.scalars(select(CheckLog).where(CheckLog.asked_by_id.is_not(None))).one()
    assert network.asked_by_id == ids["carrier"]
    # An unknown calling number: deny, no chain; another carrier's call: not_your_number.
    resp = carrier.post("/network/check", {"phone": HOLDER, "from": "10690999"})
    body = resp.get_json()
    assert (body["reason"], body["chain"], body["check_id"]) == ("unregistered_caller", None, None)
    resp = telecom.post("/network/check", {"phone": HOLDER, "from": LINE})
    assert error(resp) == (403, "not_your_number")
    # Withdrawn: the switch is told at once.
    [made] = [
        c for c in carrier.get("/connections").get_json()["connections"] if c["address"] == LINE
    ]
    carrier.post(f"/connections/{made['id']}/withdraw", {})
    resp = carrier.post("/network/check", {"phone": HOLDER, "from": LINE, "purpose": "service"})
    assert resp.get_json()["reason"] == "unregistered_caller"
    for bad in ({"phone": "nope", "from": LINE}, {"phone": HOLDER, "from": "x"}, {"phone": HOLDER}):
        assert error(carrier.post("/network/check", bad))[0] == 422, bad


def test_carrier_sees_complaints_and_sanctions_about_what_it_connects(
    acme: Api, shop: Api, carrier: Api, telecom: Api, session: Session
) -> None:
    connect(carrier, "acme", PORT)
    connect(telecom, "shop", SHOP_PORT)
    check_from(acme, "acme-cards", PORT)
    contacted = utcnow() - timedelta(hours=1)
    about_acme = complaints.file_complaint(session, HOLDER, "1069 0001", "sms", contacted, "spam")
    about_shop = complaints.file_complaint(session, HOLDER, SHOP_PORT, "sms", contacted, "spam")
    session.commit()
    assert about_acme.carrier_id == session.scalar(
        select(Organization.id).where(Organization.slug == "carrier")
    )
    body = carrier.get("/carrier/complaints").get_json()
    assert [c["id"] for c in body["complaints"]] == [about_acme.id]
    seen = body["complaints"][0]
    assert (seen["address"], seen["sender"], seen["organization"], seen["carrier"]) == (
        PORT, "acme-cards", "acme", "carrier",
    )  # fmt: skip
    assert "phone" not in seen  # the holder's number is not the carrier's to learn
    assert carrier.get(f"/carrier/complaints?after={body['next']}").get_json()["complaints"] == []
    assert [c["id"] for c in telecom.get("/carrier/complaints").get_json()["complaints"]] == [
        about_shop.id
    ]
    assert error(carrier.get("/carrier/complaints?after=x")) == (422, "validation_error")
    # Sanctions: a suspension of acme's port is the carrier's to see, not telecom's.
    from registry.orgs.models import Organization as Org
    from registry.sanctions import measures

    org = session.scalars(select(Org).where(Org.slug == "acme")).one()
    basis = measures.Basis("complaints about the port", None, "staff:test", utcnow())
    measures.suspend_address(session, org, basis, PORT, 5)
    session.commit()
    sanctions = carrier.get("/carrier/sanctions").get_json()["sanctions"]
    assert [(s["kind"], s["organization"], s["address"]) for s in sanctions] == [
        ("suspension", "acme", PORT)
    ]
    assert telecom.get("/carrier/sanctions").get_json()["sanctions"] == []


def test_a_withdrawal_in_the_middle_of_a_batch_does_not_split_it(
    acme: Api, carrier: Api, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The address is read once for the whole batch: one snapshot, however many chunks."""
    from sqlalchemy import update

    from registry.checks import facts
    from registry.senders.models import SenderAddress

    [made] = connect(carrier, "acme", PORT)
    decode = facts._DECODERS["address"]
    withdrawn: list[int] = []

    def read_then_withdraw(got, row):  # type: ignore[no-untyped-def]
        decode(got, row)
        if not withdrawn:  # the line is disconnected while the rest of the batch is read
            # On the test's own connection (the request reads through it), without a Session.
            session.get_bind().execute(  # type: ignore[union-attr]
                update(SenderAddress)
                .where(SenderAddress.address == PORT)
                .values(withdrawn_at=utcnow())
            )
            withdrawn.append(made["id"])

    monkeypatch.setitem(facts._DECODERS, "address", read_then_withdraw)
    phones = [f"+86138{i:08d}" for i in range(facts.CHUNK * 2 + 5)]  # several chunks on SQLite
    resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms", "at": NOON,
                                      "purpose": "service", "phones": phones, "from": PORT})  # fmt: skip
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert withdrawn == [made["id"]]
    assert {r["reason"] for r in body["results"]} == {"not_marketing"}
    monkeypatch.setitem(facts._DECODERS, "address", decode)
    assert check_from(acme, "acme-cards", PORT)["reason"] == "unregistered_caller"


def test_the_carrier_is_forwarded_the_complaint_about_the_port_it_connects(
    app: Flask, acme: Api, carrier: Api, telecom: Api, session: Session
) -> None:
    """谁接入谁负责: the complaint goes to the merchant and to the carrier connecting the port."""
    from registry.complaints import routing

    connect(carrier, "acme", PORT)
    asked = acme.check(HOLDER, sender="acme-cards", at=None, **{"from": PORT})
    assert (asked["decision"], asked["reason"]) in {("deny", "no_consent"), ("deny", "quiet_hours")}
    contacted = utcnow()  # after the check: the verdict rests on it
    filed = routing.lodge(session, app.config["REGISTRY"], HOLDER, PORT, "sms", contacted, "spam")
    session.commit()
    assert filed.verdict == "contacted_despite_deny"
    for api, role in ((acme, "merchant"), (carrier, "carrier")):
        items = api.get("/complaints").get_json()["complaints"]
        assert [(i["id"], i["role"]) for i in items] == [(filed.id, role)]
        feed = api.get("/changes").get_json()["changes"]
        assert [c["complaint"]["role"] for c in feed if c["type"] == "complaint.forwarded"] == [
            role
        ]
    # Another carrier connects nothing of acme's: it is told nothing, and cannot answer.
    assert telecom.get("/complaints").get_json()["complaints"] == []
    refused = telecom.post(f"/complaints/{filed.id}/answer", {"found": "?", "action": "none"})
    assert refused.status_code == 403
