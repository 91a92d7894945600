"""Opt-outs and holders' SMS replies, table-driven with real-world texts."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.consent.models import OptOut
from registry.consent.replies import classify
from registry.subscribers.models import Subscriber
from tests.conftest import Api
from tests.factories import HOLDER

# (reply text, action) — texts as people really send them, including the ones
# naive keyword matching gets wrong.
REPLIES = [
    ("STOP", "opt_out"),
    ("stop", "opt_out"),
    ("Stop. Thank you", "opt_out"),
    ("  STOP  ", "opt_out"),
    ("Stop!!!", "opt_out"),
    ("please stop texting me", "opt_out"),
    ("UNSUBSCRIBE", "opt_out"),
    ("Cancel", "opt_out"),
    ("end", "opt_out"),
    ("QUIT", "opt_out"),
    ("revoke", "opt_out"),
    ("OPTOUT", "opt_out"),
    ("TD", "opt_out"),
    ("td", "opt_out"),
    ("ＴＤ", "opt_out"),  # full-width letters, as Chinese keyboards type them
    ("T", "opt_out"),
    ("退订", "opt_out"),
    ("退订。", "opt_out"),
    ("我要退订，谢谢", "opt_out"),
    ("取消", "opt_out"),
    ("取消订阅", "opt_out"),
    ("请不要再发了 退订", "opt_out"),
    ("Yes, stop", "opt_out"),  # a refusal wins over anything else in the message
    ("STOP START", "opt_out"),
    ("HELP STOP", "opt_out"),
    ("STOPALL", "opt_out_all"),
    ("stop all", "opt_out_all"),
    ("全部退订", "opt_out_all"),
    ("ＳＴＯＰＡＬＬ", "opt_out_all"),
    ("START", "opt_in"),
    ("unstop", "opt_in"),
    ("Y", "confirm"),
    ("y", "confirm"),
    ("Ｙ", "confirm"),
    ("YES", "confirm"),
    ("yes.", "confirm"),
    ("是", "confirm"),
    ("同意", "confirm"),
    ("同意！", "confirm"),
    ("HELP", "help"),
    ("info", "help"),
    ("帮助", "help"),
    ("Yes please send me more", "none"),  # consent is never inferred from a longer text
    ("Weekend", "none"),  # contains "end" but is not the word END
    ("restart", "none"),
    ("Tomorrow", "none"),
    ("can't wait", "none"),
    ("don’t care", "none"),
    ("hello", "none"),
    ("好的", "none"),
    ("", "none"),
    ("😀", "none"),
]


@pytest.mark.parametrize(("text", "action"), REPLIES)
def test_classify(text: str, action: str) -> None:
    assert classify(text) == action


def test_at_least_forty_real_replies() -> None:
    assert len(REPLIES) >= 40


def reply(api: Api, text: str, to: str = "10690001", phone: str = HOLDER):  # type: ignore[no-untyped-def]
    return api.post("/inbound-sms", {"from": phone, "to": to, "text": text})


def registry_reply(gateway: Api, text: str, phone: str = HOLDER):  # type: ignore[no-untyped-def]
    body = {"from": phone, "to": "10690000", "text": text}
    return gateway.post("/gateway/inbound-sms", body)


def test_optout_after_consent_denies_then_start_to_the_registry_allows_again(
    app: Flask, acme: Api, gateway: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )
    acme.post("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
                            "evidence": {"method": "web_form", "captured_at": "2026-01-01T10:00:00+08:00"}})  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "consent"
    answer = reply(acme, "退订").get_json()
    assert answer == {"action": "opt_out", "sender": "acme-cards", "reply": answer["reply"],
                      "claimed": None, "opted_out": ["acme-cards"]}  # fmt: skip
    assert "退订" in answer["reply"]
    assert "START 10690001" in answer["reply"]  # how to undo it, through the registry
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="voice")["reason"] == "opted_out"
    # Before issue 12 a START forwarded by the sender re-subscribed: now it is a claim.
    assert reply(acme, "START").get_json()["action"] == "claim_recorded"
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert registry_reply(gateway, "START 10690001").get_json()["action"] == "opt_in"
    assert acme.check(HOLDER)["reason"] == "consent"


def test_stopall_to_a_port_refuses_that_organizations_senders_only(
    acme: Api, shop: Api, session: Session
) -> None:
    # Before issue 12 it set the holder's global SMS do-not-disturb.
    answer = reply(acme, "全部退订").get_json()
    assert answer["action"] == "opt_out_all"
    assert answer["opted_out"] == ["acme-cards"]
    assert "10690000" in answer["reply"]  # where global do-not-disturb is asked for
    assert session.get(Subscriber, HOLDER) is None  # no preference was touched
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "no_consent"


def test_help_names_the_sender_and_how_to_refuse(acme: Api) -> None:
    answer = reply(acme, "HELP").get_json()
    assert answer["action"] == "help"
    assert "Acme-Cards" in answer["reply"]
    assert "TD" in answer["reply"]


def test_reply_in_english_when_the_holder_chose_english(acme: Api, session: Session) -> None:
    session.add(Subscriber(phone=HOLDER, language="en"))
    session.commit()
    assert "unsubscribed" in reply(acme, "STOP").get_json()["reply"]


def test_y_to_a_port_is_a_claim_that_confirms_nothing(acme: Api) -> None:
    answer = reply(acme, "Y").get_json()
    assert (answer["action"], answer["claimed"]) == ("claim_recorded", "confirm")
    assert "10690000" in answer["reply"]
    assert acme.check(HOLDER)["reason"] == "no_consent"


def test_unknown_address_and_other_orgs_address(acme: Api, shop: Api) -> None:
    resp = reply(acme, "STOP", to="10699999")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "unknown_address"
    resp = reply(shop, "STOP", to="10690001")  # acme's port: shop may not forward for it
    assert resp.status_code == 403
    assert reply(acme, "STOP", phone="not-a-phone").get_json()["error"]["code"] == "invalid_phone"


def test_optouts_api(acme: Api, session: Session) -> None:
    body = {
        "phone": "138 0013 8000",
        "sender": "acme-cards",
        "channels": ["voice"],
        "source": "call",
        "text": "don't call",
    }
    first = acme.post("/optouts", body)
    assert first.status_code == 201
    assert first.get_json()["phone"] == HOLDER
    assert acme.post("/optouts", body).status_code == 201  # a duplicate is harmless
    assert acme.check(HOLDER, channel="voice")["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="sms")["reason"] == "no_consent"
    assert session.scalar(select(func.count()).select_from(OptOut)) == 2
    for bad, code in (
        ({**body, "phone": "x"}, "invalid_phone"),
        ({**body, "channels": []}, "validation_error"),
        ({**body, "received_at": "2999-01-01T00:00:00Z"}, "validation_error"),
        ({**body, "sender": "shop-deals"}, "forbidden"),
    ):
        resp = acme.post("/optouts", bad)
        assert resp.get_json()["error"]["code"] == code
