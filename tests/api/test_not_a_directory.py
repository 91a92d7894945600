"""The registry is never a directory of numbers (issue 12, section 3; SPEC §8, last line).

Watching, comparing and checking strangers' numbers all draw on one cold-number
budget; the feed never hands out a number's history from before the watch (or
a principal's from before the delegation); one number never receives a flood of
consent texts; every read is limited per key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from registry.sms.models import SmsMessage
from registry.subscribers import services as subscribers
from tests.api.test_changes import follow
from tests.api.test_consents import consent_body
from tests.api.test_delegations import agents, grant  # noqa: F401  (the agents fixture)
from tests.conftest import Api, other_app
from tests.factories import HOLDER, HOLDER2, World
from tests.web.test_site import sign_in

STRANGERS = [f"+8613900000{i:03d}" for i in range(20)]
VOICE = "+8613700137000"


def optout(api: Api, phone: str, sender: str = "acme-cards", channels: Any = None) -> None:
    resp = api.post(
        "/optouts",
        {"phone": phone, "sender": sender, "channels": channels or ["sms"], "source": "call"},
    )
    assert resp.status_code == 201, resp.get_json()


def make_world() -> World:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        return factories.world(s)


@contextmanager
def limited(app: Flask, tmp_path: Path, **env: str) -> Iterator[tuple[FlaskClient, World]]:
    """Yield a client of an app with these (small) limits, and a committed world."""
    world = make_world()
    with other_app(app.config["REGISTRY"].database_url, tmp_path, **env) as extra:
        yield extra.test_client(), world


def count_logged(phone: str) -> int:
    from registry.extensions import db

    with db.session() as s:
        return int(
            s.scalar(text("SELECT count(*) FROM check_log WHERE phone = :p"), {"p": phone}) or 0
        )


def assert_429(resp: Any) -> None:
    assert resp.status_code == 429, resp.get_json()
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0


# --- the watchlist --------------------------------------------------------------


@pytest.mark.live
def test_watching_strangers_numbers_is_charged_then_refused(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="4 per minute") as (client, world):
        acme, shop = Api(client, world.keys["acme"]), Api(client, world.keys["shop"])
        optout(acme, HOLDER2)  # a record of acme's sender: a relationship, free to watch
        acme.check(HOLDER)  # a check of its own (that one was charged: 1 of 4)
        resp = acme.post("/watchlist", {"phones": [HOLDER, HOLDER2, *STRANGERS[:3]]})
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json() == {"changed": 5, "watching": 5, "rejected": [], "charged": 3}
        # The budget is spent: one more stranger and the whole call is refused.
        resp = acme.post("/watchlist", {"phones": [HOLDER2, STRANGERS[3]]})
        assert_429(resp)
        assert "not a directory" in resp.get_json()["error"]["message"]
        gone = client.delete(
            "/api/v1/watchlist", json={"phones": [STRANGERS[3]]}, headers=acme.headers()
        )
        assert gone.get_json()["changed"] == 0  # it was never added
        # Numbers already watched, or known, cost nothing even now.
        again = acme.post("/watchlist", {"phones": [HOLDER, HOLDER2, STRANGERS[0]]})
        assert again.status_code == 200
        assert (again.get_json()["changed"], again.get_json()["charged"]) == (0, 0)
        # Another organization's record is not acme's relationship.
        optout(shop, STRANGERS[4], sender="shop-deals")
        assert_429(acme.post("/watchlist", {"phones": [STRANGERS[4]]}))
        # ...and that organization has its own budget, and its own records are free.
        resp = shop.post("/watchlist", {"phones": [STRANGERS[4], *STRANGERS[5:9]]})
        assert resp.status_code == 200
        assert resp.get_json()["charged"] == 4


@pytest.mark.live
def test_a_pending_consent_is_no_relationship_for_a_watch(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="1 per minute") as (client, world):
        acme = Api(client, world.keys["acme"])
        # The sender's claim, waiting for the holder: it does not make the number acme's.
        assert acme.post("/consents", consent_body(phone=STRANGERS[0])).status_code == 201
        assert acme.post("/watchlist", {"phones": [STRANGERS[0]]}).get_json()["charged"] == 1
        assert acme.post("/consents", consent_body(phone=STRANGERS[1])).status_code == 201
        assert_429(acme.post("/watchlist", {"phones": [STRANGERS[1]]}))


def test_a_watch_shows_only_changes_made_after_it_began(acme: Api, session: Session) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True)  # before the watch
    session.commit()
    assert acme.post("/watchlist", {"phones": [HOLDER]}).status_code == 200
    assert follow(acme) == []  # the past DND is not in the feed, however far back one reads
    subscribers.set_preferences(session, HOLDER, blocked_categories=["finance"])  # after
    session.commit()
    seen = follow(acme)
    assert [(c["type"], c["preferences"]["blocked_categories"]) for c in seen] == [
        ("preferences.changed", ["finance"])
    ]
    # Unwatched, then watched again: the watch begins again, the gap stays hidden.
    acme.client.delete("/api/v1/watchlist", json={"phones": [HOLDER]}, headers=acme.headers())
    subscribers.set_preferences(session, HOLDER, dnd_voice=True)  # while not watched
    session.commit()
    acme.post("/watchlist", {"phones": [HOLDER]})
    subscribers.set_preferences(session, HOLDER, quiet_hours="22:00-09:00")
    session.commit()
    seen = follow(acme)
    assert len(seen) == 1
    assert seen[0]["preferences"]["quiet_hours"] == "22:00-09:00"


# --- /sync/compare -----------------------------------------------------------------


def rows(*phones: str, channel: str = "sms") -> dict[str, Any]:
    return {
        "rows": [
            {"phone": p, "sender": "acme-cards", "channel": channel, "state": "denied"}
            for p in phones
        ]
    }


def test_compare_is_logged_as_a_check_the_holder_sees(
    client: FlaskClient, acme: Api, session: Session, world: World
) -> None:
    resp = acme.post("/sync/compare", rows(HOLDER))
    assert resp.status_code == 200
    assert resp.get_json()["differences"] == []  # no consent: denied, as the row says
    logged = session.execute(
        text("SELECT phone, reason FROM check_log WHERE sender_id = :s"),
        {"s": world.sender_ids["acme-cards"]},
    ).all()
    assert [tuple(r) for r in logged] == [(HOLDER, "no_consent")]
    sign_in(client, session)  # the holder of HOLDER
    assert "Acme-Cards" in client.get("/me/checks").get_data(as_text=True)


@pytest.mark.live
def test_compare_is_charged_to_the_cold_check_limit(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="3 per minute") as (client, world):
        acme = Api(client, world.keys["acme"])
        optout(acme, HOLDER2)  # warm for acme-cards on sms
        resp = acme.post("/sync/compare", rows(HOLDER2, *STRANGERS[:3]))
        assert resp.status_code == 200, resp.get_json()
        assert count_logged(STRANGERS[0]) == 1
        resp = acme.post("/sync/compare", rows(HOLDER2, STRANGERS[3]))
        assert_429(resp)
        assert count_logged(STRANGERS[3]) == 0  # refused whole: nothing answered, nothing logged
        # After the limit, a stranger's DND is no more to be had through compare than a check.
        assert_429(acme.post("/check", {"phone": STRANGERS[4], "sender": "acme-cards", "channel": "sms"}))  # fmt: skip
        # Known numbers still compare.
        assert acme.post("/sync/compare", rows(HOLDER2)).status_code == 200


# --- warm means this sender and this channel ------------------------------------


@pytest.mark.live
def test_voice_pending_consents_do_not_warm_sms_checks(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="3 per minute") as (client, world):
        acme, shop = Api(client, world.keys["acme"]), Api(client, world.keys["shop"])
        numbers = STRANGERS[:4]
        for phone in numbers:
            resp = acme.post("/consents", consent_body(phone=phone, channels=["voice"]))
            assert resp.status_code == 201
        sms = {"sender": "acme-cards", "channel": "sms", "phones": numbers}
        # Four numbers cold on sms, limit 3 (were they warm, nothing would be charged).
        assert_429(acme.post("/check/batch", sms))
        # Another organization's consent warms nothing for acme either.
        assert shop.post("/consents", consent_body(phone=VOICE, sender="shop-deals")).status_code == 201  # fmt: skip
        check = {"phone": VOICE, "sender": "acme-cards", "channel": "sms"}
        assert_429(acme.post("/check", check))
        # On voice the pending consents are acme's own records: warm, answered as pending.
        resp = acme.post("/check/batch", {**sms, "channel": "voice"})
        assert resp.status_code == 200
        assert {r["reason"] for r in resp.get_json()["results"]} == {"consent_pending"}
        # And acme's own sms record warms acme's sms check, budget spent or not.
        assert acme.post("/consents", consent_body(phone=VOICE)).status_code == 201
        resp = acme.post("/check", check)  # now: the consent is still waiting for the holder
        assert resp.status_code == 200
        assert resp.get_json()["reason"] == "consent_pending"


@pytest.mark.live
def test_records_that_no_longer_speak_for_the_number_do_not_warm_it(
    app: Flask, tmp_path: Path
) -> None:
    """A lapsed, never-confirmed claim, and records from before a disconnection, are cold."""
    from registry.events.services import Actor
    from registry.extensions import db
    from registry.numbers import services as numbers
    from registry.timeutil import utcnow

    with limited(app, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="2 per minute") as (client, world):
        acme = Api(client, world.keys["acme"])
        assert acme.post("/consents", consent_body(phone=HOLDER)).status_code == 201
        optout(acme, HOLDER2)
        sms = {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER, HOLDER2]}
        assert acme.post("/check/batch", sms).status_code == 200  # both warm: nothing charged
        # The pending consent lapses after REGISTRY_CONSENT_PENDING_DAYS: in 2030 it is no record.
        assert acme.check(HOLDER)["reason"] == "no_consent"  # charged: 1 of 2
        # HOLDER2 changed hands: acme's opt-out was the previous holder's.
        with db.session() as s:
            numbers.disconnect(
                s,
                app.config["REGISTRY"],
                Actor("carrier:carrier", "api", world.org_ids["carrier"]),
                HOLDER2,
                utcnow(),
            )
            s.commit()
        assert acme.post("/check", {"phone": HOLDER2, "sender": "acme-cards", "channel": "sms"}).status_code == 200  # fmt: skip
        assert_429(
            acme.post("/check/batch", sms)
        )  # HOLDER (at now: pending, warm) + HOLDER2 (cold)


# --- consent texts to one number ----------------------------------------------------


def texts_to(phone: str) -> int:
    from registry.extensions import db

    with db.session() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(SmsMessage).where(SmsMessage.phone == phone)  # type: ignore[arg-type]
            )
            or 0
        )


@pytest.mark.live
def test_a_flood_of_consent_texts_to_one_number_is_stopped(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_CONSENT_NUMBER="3 per hour") as (client, world):
        acme, shop = Api(client, world.keys["acme"]), Api(client, world.keys["shop"])
        items = [consent_body(external_id=f"ext-{i}") for i in range(10)]
        resp = acme.post("/consents/bulk", {"consents": items})
        assert resp.status_code == 200
        results = resp.get_json()["results"]
        assert [r["consent"]["status"] for r in results[:3]] == ["pending"] * 3
        assert {r["error"]["code"] for r in results[3:]} == {"rate_limited"}
        assert "retry in" in results[3]["error"]["message"]
        assert texts_to(HOLDER) == 3
        listed = acme.get(f"/consents?phone={HOLDER}").get_json()["consents"]
        assert len(listed) == 3  # a refused item is not recorded (retry it: same external_id)
        # Whichever sender asks, and however: /consents and /consent-requests share the budget.
        single = shop.post("/consents", consent_body(sender="shop-deals"))
        assert_429(single)
        ask = {"phone": "0086 138-0013-8000", "sender": "shop-deals", "channels": ["sms"], "wording": "Deals"}  # fmt: skip
        assert_429(shop.post("/consent-requests", ask))
        assert texts_to(HOLDER) == 3
        # A replay of a recorded external_id sends nothing, and still answers.
        assert acme.post("/consents", items[0]).status_code == 200
        # Another number has its own budget.
        assert shop.post("/consents", consent_body(phone=HOLDER2, sender="shop-deals")).status_code == 201  # fmt: skip


# --- every read is limited per key --------------------------------------------------


# GETs with limits of their own, tested where they are defined.
OWN_READ_LIMITS = {
    "api.lookup",  # REGISTRY_RATELIMIT_LOOKUP_KEY and _CLIENT (tests/api/test_lookup.py)
    # Kannel's dlr-url can only GET, but it records a delivery report: a write, under the
    # write limit, and refused (403) without a message id the registry signed.
    "api.gateway_kannel_dlr",
}


def api_read_routes(app: Flask) -> list[tuple[str, str]]:
    """Return (endpoint, path) for every GET route of /api/v1."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and "GET" in (rule.methods or set()):
            out.append((rule.endpoint, re.sub(r"<[^>]+>", "1", rule.rule)))
    return out


# GETs that are checks: limited as checks (REGISTRY_RATELIMIT_CHECK and the cold budget),
# shown by tests/api/test_check_text.py::test_the_check_limit_applies.
CHECK_READS = {"api.check_text"}


@pytest.mark.live
def test_every_get_endpoint_answers_429_after_its_limit(app: Flask, tmp_path: Path) -> None:
    with limited(app, tmp_path, REGISTRY_RATELIMIT_READ="2 per minute") as (client, world):
        routes = api_read_routes(app)
        assert {
            "api.changes", "api.list_consents", "api.get_consent", "api.receipt",
            "api.reassigned", "api.list_senders", "api.list_webhooks", "api.list_delegations",
            "api.openapi_json",
        } <= {endpoint for endpoint, _ in routes}  # fmt: skip
        acme = Api(client, world.keys["acme"])
        wrong = []
        for endpoint, path in routes:
            if endpoint in OWN_READ_LIMITS | CHECK_READS:
                continue
            path = path.replace("/numbers/1/", f"/numbers/{HOLDER}/") + "?since=2026-01-01"
            answers = [client.get(path, headers=acme.headers()) for _ in range(3)]
            last = answers[-1]
            if (
                any(a.status_code == 429 for a in answers[:2])
                or last.status_code != 429
                or last.headers.get("Retry-After") is None
                or (last.is_json and last.get_json()["error"]["code"]) != "rate_limited"
                or last.headers.get("X-RateLimit-Limit") != "2"
            ):
                wrong.append(f"{endpoint}: {[a.status_code for a in answers]}")
        assert wrong == []
        # Per key: another organization's key still reads.
        shop = Api(client, world.keys["shop"])
        assert shop.get("/changes").status_code == 200
        assert shop.get(f"/numbers/{HOLDER}/reassigned?since=2026-01-01").status_code == 200


# --- an agent reads a principal's changes only from its delegation on ------------------


def test_agent_with_changes_reads_nothing_from_before_its_delegation(
    acme: Api,
    agents: tuple[Api, Api],  # noqa: F811
) -> None:
    agent, _ = agents
    optout(acme, HOLDER)  # the principal's history: before any delegation
    delegation = grant(acme, "callcenter-a", ["changes"])
    optout(acme, HOLDER2)  # after the delegation began
    seen = follow(agent)
    assert [(c["type"], c["phone"]) for c in seen] == [("optout.recorded", HOLDER2)]
    # Revoked, then granted again: the gap is as hidden as the time before.
    acme.post(f"/delegations/{delegation['id']}/revoke")
    optout(acme, VOICE)
    grant(acme, "callcenter-a", ["changes"])
    optout(acme, STRANGERS[0])
    assert [c["phone"] for c in follow(agent)] == [STRANGERS[0]]
    # The principal itself reads all of its own.
    assert [c["phone"] for c in follow(acme)] == [HOLDER, HOLDER2, VOICE, STRANGERS[0]]


def test_the_openapi_document_says_so(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            limited = op["responses"].get("429", {})
            assert "Retry-After" in limited.get("headers", {}), f"{method} {path}"
    assert "REGISTRY_RATELIMIT_READ" in doc["paths"]["/api/v1/changes"]["get"]["responses"]["429"]["description"]  # fmt: skip
    watch = doc["components"]["schemas"]["WatchIn"]["description"]
    assert "cold-check limit" in watch
    assert "from the moment its watch began" in watch
    assert "charged" in doc["components"]["schemas"]["WatchOut"]["properties"]
