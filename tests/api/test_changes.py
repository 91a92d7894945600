"""The change feed, watchlists and scope: what one organization may and may not see."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from registry.events import sealing
from registry.subscribers import services as subscribers
from registry.timeutil import iso, utcnow
from tests.api.test_consents import consent_body, registry_reply, reply
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2

OTHER = "+8613700137000"


def feed(api: Api, after: int = 0, limit: int = 1000) -> dict[str, Any]:
    resp = api.get(f"/changes?after={after}&limit={limit}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def follow(api: Api, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = feed(api, after, limit)
        out += page["changes"]
        after = page["next"]
        if not page["has_more"]:
            return out


def test_own_senders_changes_from_every_channel_in_order(
    acme: Api, gateway: Api, session: Session
) -> None:
    acme.post("/consents", consent_body())  # pending: the registry texts the holder
    reply(acme, "Y")  # forwarded by the sender: a claim, which changes nothing
    registry_reply(gateway, "Y")  # the holder's reply to the registry's number: confirmed
    acme.post("/optouts", {"phone": HOLDER2, "sender": "acme-cards", "channels": ["voice"], "source": "call"})  # fmt: skip
    changes = follow(acme)
    assert [c["type"] for c in changes] == [
        "consent.created",
        "claim.recorded",
        "consent.confirmed",
        "optout.recorded",
    ]
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    created, claim, confirmed, optout = changes
    assert (claim["sender"], claim["state"], claim["organization"]) == (
        "acme-cards",
        "claimed",
        "acme",
    )
    assert created == {
        "seq": created["seq"], "type": "consent.created", "phone": HOLDER, "sender": "acme-cards",
        "channels": ["sms"], "state": "pending", "at": created["at"],
        "consent_id": created["consent_id"], "organization": "acme",
    }  # fmt: skip
    assert confirmed["state"] == "active"
    assert optout["phone"] == HOLDER2
    assert optout["channels"] == ["voice"]
    assert optout["state"] == "opted_out"


def test_pages_resume_from_next_without_gaps_or_repeats(acme: Api) -> None:
    for i in range(7):
        phone = f"+86138001380{i:02d}"
        acme.post("/optouts", {"phone": phone, "sender": "acme-cards", "channels": ["sms"], "source": "app"})  # fmt: skip
    pages, after = [], 0
    while True:
        page = feed(acme, after, limit=3)
        pages.append(page["changes"])
        after = page["next"]
        if not page["has_more"]:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    seqs = [c["seq"] for p in pages for c in p]
    assert seqs == sorted(set(seqs))
    assert len(seqs) == 7
    assert feed(acme, after)["changes"] == []
    assert feed(acme, after)["next"] == after


def test_an_organization_never_sees_another_organizations_records(
    acme: Api, shop: Api, session: Session
) -> None:
    acme.post("/consents", consent_body(phone=HOLDER))
    shop.post("/consents", consent_body(phone=HOLDER2, sender="shop-deals"))
    reply(shop, "STOP", phone=HOLDER2, to="10690002")
    acme_seen = follow(acme)
    shop_seen = follow(shop)
    assert {c["sender"] for c in acme_seen} == {"acme-cards"}
    assert {c["phone"] for c in acme_seen} == {HOLDER}
    assert {c.get("sender") for c in shop_seen} == {"shop-deals"}
    assert HOLDER not in {c["phone"] for c in shop_seen}


def test_preferences_only_for_watched_numbers(acme: Api, shop: Api, session: Session) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True)
    subscribers.set_preferences(session, OTHER, blocked_categories=["finance"])
    session.commit()
    assert follow(acme) == []  # nobody learns of a number it did not name
    resp = acme.post("/watchlist", {"phones": ["138 0013 8000", "not a phone"]})
    assert resp.status_code == 200
    assert resp.get_json()["changed"] == 1
    assert resp.get_json()["watching"] == 1
    assert resp.get_json()["rejected"][0]["index"] == 1
    # The change made before the watch began is the number's history: not shown.
    assert follow(acme) == []
    subscribers.set_preferences(session, HOLDER, dnd_voice=True)
    session.commit()
    seen = follow(acme)
    assert [(c["type"], c["phone"]) for c in seen] == [("preferences.changed", HOLDER)]
    assert seen[0]["preferences"]["dnd_voice"] is True
    assert "organization" not in seen[0]
    assert "sender" not in seen[0]
    assert follow(shop) == []  # acme's watchlist is acme's
    # Watching again is harmless; unwatching hides the number again.
    assert acme.post("/watchlist", {"phones": [HOLDER]}).get_json()["changed"] == 0
    resp = acme.client.delete(
        "/api/v1/watchlist", json={"phones": [HOLDER]}, headers=acme.headers()
    )
    assert resp.get_json() == {"changed": 1, "watching": 0, "rejected": []}
    assert follow(acme) == []


def test_disconnection_reaches_watchers_with_its_reset(
    acme: Api, carrier: Api, session: Session
) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_voice=True)  # before the watch: not shown
    session.commit()
    acme.post("/watchlist", {"phones": [HOLDER]})
    when = iso(utcnow())
    resp = carrier.post("/numbers/disconnections", {"disconnections": [{"phone": HOLDER, "disconnected_at": when}]})  # fmt: skip
    assert resp.status_code == 202
    seen = follow(acme)
    assert [c["type"] for c in seen] == ["preferences.changed", "number.disconnected"]
    assert seen[0]["state"] == "reset"
    assert seen[0]["preferences"]["dnd_voice"] is False
    assert seen[1]["disconnected_at"] == when


@pytest.mark.parametrize(
    "query",
    ["after=-1", "after=abc", "limit=0", "limit=1001", "limit=x", "after=99999999999999999999"],
)
def test_bad_cursor_is_a_validation_error(acme: Api, query: str) -> None:
    resp = acme.get(f"/changes?{query}")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "validation_error"


def test_feed_and_watchlist_need_a_key(client: Any) -> None:
    assert client.get("/api/v1/changes").status_code == 401
    assert client.post("/api/v1/watchlist", json={"phones": [HOLDER]}).status_code == 401


def test_watchlist_limits(acme: Api) -> None:
    resp = acme.post("/watchlist", {"phones": [HOLDER] * 10_001})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "too_large"
    assert acme.post("/watchlist", {"phones": []}).status_code == 422
    assert acme.post("/watchlist", {"phones": [None, {"a": 1}]}).get_json()["changed"] == 0
    resp = acme.client.post("/api/v1/watchlist", data=b"{", headers=acme.headers())
    assert resp.status_code == 400


def test_receipts_name_the_feed_number_they_rest_on(acme: Api) -> None:
    acme.post("/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "app"})  # fmt: skip
    top = feed(acme)["next"]
    sealing.forget_known()  # this test's log is rolled back afterwards; no stale number
    answer = acme.check(HOLDER)
    assert answer["reason"] == "opted_out"
    receipt = acme.get(f"/receipts/{answer['check_id']}").get_json()
    assert receipt["registry_seq"] == top
    batch = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER]}
    )
    receipt = acme.get(f"/receipts/{batch.get_json()['check_id']}").get_json()
    assert receipt["registry_seq"] == top


def test_a_short_page_moves_next_past_what_is_not_yours(acme: Api, shop: Api) -> None:
    acme.post("/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "app"})  # fmt: skip
    for i in range(5):
        shop.post("/optouts", {"phone": f"+86138001380{i:02d}", "sender": "shop-deals", "channels": ["sms"], "source": "app"})  # fmt: skip
    page = feed(acme)
    assert [c["phone"] for c in page["changes"]] == [HOLDER]
    top = feed(shop)["next"]
    assert page["next"] == top  # shop's five are behind acme's cursor now
    assert page["has_more"] is False
    assert feed(acme, page["next"])["changes"] == []
