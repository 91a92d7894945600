"""Complaints through the API: a reporter files, the organizations routed to answer."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.config import Settings
from registry.timeutil import iso, utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World


def _filing(phone: str = HOLDER, **kw: object) -> dict[str, object]:
    now = utcnow()
    return {
        "phone": phone,
        "address": "10690001",
        "channel": "sms",
        "contacted_at": iso(now),  # just after the tests' checks
        "text": "【Acme】贷款额度已批，回T退订",
        "verification": {"method": "sms_code", "verified_at": iso(now - timedelta(minutes=5))},
        **kw,
    }


def test_reporter_files_and_the_merchant_and_agent_are_routed(
    reporter: Api, acme: Api, agent: Api, shop: Api, settings: Settings, session: Session
) -> None:
    assert agent.check(HOLDER)["decision"] == "deny"  # the agent asked for Acme: no consent
    resp = reporter.post("/complaints", _filing())
    assert resp.status_code == 201, resp.get_json()
    filed = resp.get_json()
    assert filed["intake"] == "reporter"
    assert filed["verdict"] == "contacted_despite_deny"
    assert filed["reference"].startswith("TS")
    cid = filed["id"]
    # Routed to the merchant and its agent, each in its own feed.
    for api, role in ((acme, "merchant"), (agent, "agent")):
        items = api.get("/complaints").get_json()["complaints"]
        assert [(i["id"], i["role"]) for i in items] == [(cid, role)]
        feed = api.get("/changes").get_json()["changes"]
        forwards = [c for c in feed if c["type"] == "complaint.forwarded"]
        assert [f["complaint"]["role"] for f in forwards] == [role]
    # ShopMall was not concerned: it reads nothing, and its answer is refused.
    assert shop.get("/complaints").get_json()["complaints"] == []
    assert not [c for c in shop.get("/changes").get_json()["changes"]
                if c["type"] == "complaint.forwarded"]  # fmt: skip
    refused = shop.post(f"/complaints/{cid}/answer", {"found": "not us", "action": "none"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    assert shop.get(f"/complaints/{cid}").status_code == 403
    # Both answer.
    answer = {"found": "Sent from our campaign 12", "action": "stopped_contacting",
              "attachments": ["ticket:4411"]}  # fmt: skip
    first = acme.post(f"/complaints/{cid}/answer", answer)
    assert first.status_code == 201
    assert first.get_json()["late"] is False
    again = acme.post(f"/complaints/{cid}/answer", answer)
    assert again.status_code == 422
    assert agent.post(f"/complaints/{cid}/answer", {**answer, "action": "disciplined_channel"}
                      ).status_code == 201  # fmt: skip
    actions = set(session.scalars(select(StaffAudit.action).where(
        StaffAudit.subject == f"complaint:{cid}")))  # fmt: skip
    assert {"complaint.file", "complaint.verdict", "complaint.forward",
            "complaint.org_answer"} <= actions  # fmt: skip


def test_reporter_is_refused_elsewhere_and_senders_cannot_file(
    reporter: Api, acme: Api, settings: Settings
) -> None:
    resp = reporter.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 403
    as_sender = acme.post("/complaints", _filing())
    assert as_sender.status_code == 403


def test_reporter_verification_is_required_and_recorded(
    reporter: Api, settings: Settings, session: Session
) -> None:
    bad = _filing()
    bad["verification"] = {"method": "trust_me", "verified_at": iso(utcnow())}
    assert reporter.post("/complaints", bad).status_code == 422
    future = _filing()
    future["verification"] = {"method": "sms_code",
                              "verified_at": iso(utcnow() + timedelta(days=1))}  # fmt: skip
    resp = reporter.post("/complaints", future)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "validation_error"
    assert reporter.post("/complaints", _filing(phone="12")).status_code == 422


def test_a_reporter_reads_only_its_own_complaints(
    reporter: Api, client: object, session: Session, world: World, settings: Settings
) -> None:
    from tests.complaints.conftest import org_api

    other = org_api(client, session, "other-app", "reporter")  # type: ignore[arg-type]
    cid = reporter.post("/complaints", _filing()).get_json()["id"]
    assert other.get(f"/complaints/{cid}").status_code == 403
    assert other.get("/complaints").get_json()["complaints"] == []
    assert [c["id"] for c in reporter.get("/complaints").get_json()["complaints"]] == [cid]


def test_duplicate_is_linked_and_not_routed_twice(
    reporter: Api, acme: Api, settings: Settings
) -> None:
    acme.check(HOLDER2)
    first = reporter.post("/complaints", _filing(HOLDER2)).get_json()
    second = reporter.post("/complaints", _filing(HOLDER2)).get_json()
    assert second["duplicate_of"] == first["reference"]
    assert second["status"] == "closed"
    assert [c["id"] for c in acme.get("/complaints").get_json()["complaints"]] == [first["id"]]


def test_unknown_sender_stays_at_the_desk_and_fraud_is_never_auto_closed(
    reporter: Api, acme: Api, settings: Settings
) -> None:
    unknown = reporter.post("/complaints", _filing(address="95000123")).get_json()
    assert unknown["verdict"] == "unknown_sender"
    assert unknown["status"] == "open"
    fraud = reporter.post("/complaints", _filing(HOLDER2, address="95000123", type="fraud"))
    assert fraud.get_json()["police"] is True
    assert fraud.get_json()["status"] == "open"


def test_compliance_view_and_appeal_of_a_sanction(
    reporter: Api, acme: Api, shop: Api, settings: Settings, session: Session, world: World
) -> None:
    from registry.orgs import services as orgs
    from registry.sanctions import services as sanctions

    acme.check(HOLDER)
    reporter.post("/complaints", _filing())
    row = sanctions.suspend_org(session, orgs.get_org(session, "acme"), "complaints", 30,
                                "officer@regulator.example", utcnow())  # fmt: skip
    session.commit()
    sid = row.id if not isinstance(row, list) else row[0].id
    view = acme.get("/compliance").get_json()
    assert view["complaints"] == 1
    assert view["answers_due"] == 1
    assert view["verdicts"] == {"contacted_despite_deny": 1}
    assert [s["id"] for s in view["sanctions"]] == [sid]
    # Another organization cannot appeal Acme's sanction, nor see it.
    assert shop.post(f"/sanctions/{sid}/appeal", {"grounds": "x"}).status_code == 404
    assert shop.get("/compliance").get_json()["sanctions"] == []
    first = acme.post(f"/sanctions/{sid}/appeal", {"grounds": "The texts were service notices."})
    assert first.status_code == 201
    assert first.get_json()["status"] == "pending"
    assert acme.post(f"/sanctions/{sid}/appeal", {"grounds": "again"}).status_code == 409
    assert acme.get("/compliance").get_json()["sanctions"][0]["appeal"] == "pending"


def test_a_dispute_with_a_receipt_is_checked(reporter: Api, acme: Api, settings: Settings) -> None:
    check = acme.check(HOLDER2)  # deny: no consent; the receipt shows it
    cid = reporter.post("/complaints", _filing(HOLDER2)).get_json()["id"]
    forged = acme.post(f"/complaints/{cid}/answer",
                       {"found": "we checked", "action": "none", "dispute": "forged.id"})  # fmt: skip
    assert forged.status_code == 422
    resp = acme.post(f"/complaints/{cid}/answer",
                     {"found": "we checked", "action": "none", "dispute": check["check_id"]})  # fmt: skip
    assert resp.status_code == 201
    assert resp.get_json()["dispute_valid"] is False  # the receipt says deny: no cover


def test_due_filter_takes_true_or_false_only(acme: Api) -> None:
    assert acme.get("/complaints?due=true").status_code == 200
    resp = acme.get("/complaints?due=yes please")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "validation_error"
