"""``/sync/compare``: only the rows where a platform's copy differs from the registry."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.subscribers import services as subscribers
from tests.api.test_consents import consent_body, registry_reply, reply
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2

THIRD = "+8613700137000"


def compare(api: Api, rows: list[dict[str, str]], **kw: str):  # type: ignore[no-untyped-def]
    resp = api.post("/sync/compare", {"rows": rows, **kw})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def row(phone: str, state: str, channel: str = "sms", sender: str = "acme-cards") -> dict[str, str]:
    return {"phone": phone, "sender": sender, "channel": channel, "state": state}


def test_only_differences_come_back_with_the_registrys_reason(
    acme: Api, gateway: Api, session: Session
) -> None:
    acme.post("/consents", consent_body(phone=HOLDER))
    registry_reply(gateway, "Y", phone=HOLDER)  # the holder confirmed: active consent on sms
    acme.post("/consents", consent_body(phone=HOLDER2))
    reply(acme, "STOP", phone=HOLDER2)  # the gateway saw a STOP the platform missed
    subscribers.set_preferences(session, THIRD, dnd_voice=True)
    session.commit()
    answer = compare(
        acme,
        [
            row(HOLDER, "allowed"),  # agrees
            row("139-0013-9000", "allowed"),  # drifted: opted out
            row(THIRD, "denied", channel="voice"),  # agrees (DND)
            row(THIRD, "allowed", channel="voice"),  # drifted
        ],
        at="2030-01-15T23:30:00+08:00",  # the clock is not part of the state: quiet hours count as allowed
    )
    assert answer["compared"] == 4
    assert answer["errors"] == []
    assert answer["differences"] == [
        {"index": 1, "phone": HOLDER2, "sender": "acme-cards", "channel": "sms",
         "state": "denied", "yours": "allowed", "reason": "opted_out"},
        {"index": 3, "phone": THIRD, "sender": "acme-cards", "channel": "voice",
         "state": "denied", "yours": "allowed", "reason": "dnd"},
    ]  # fmt: skip


def test_bad_rows_are_reported_in_place_and_other_orgs_senders_refused(acme: Api) -> None:
    answer = compare(
        acme,
        [row("nonsense", "denied"), row(HOLDER, "denied", sender="shop-deals"),
         row(HOLDER, "denied", sender="no-such"), row(HOLDER, "denied")],
    )  # fmt: skip
    assert [(e["index"], e["error"]["code"]) for e in answer["errors"]] == [
        (0, "invalid_phone"), (1, "forbidden"), (2, "unknown_sender"),
    ]  # fmt: skip
    assert answer["differences"] == []
    assert answer["compared"] == 1


def test_validation_and_size(acme: Api) -> None:
    resp = acme.post("/sync/compare", {"rows": [{"phone": HOLDER, "sender": "acme-cards", "channel": "sms", "state": "maybe"}]})  # fmt: skip
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"][0]["field"] == "rows.0.state"
    resp = acme.post("/sync/compare", {"rows": [row(HOLDER, "denied")] * 10_001})
    assert resp.status_code == 413
    assert acme.post("/sync/compare", {"rows": []}).status_code == 422
