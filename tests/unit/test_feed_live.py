"""The feed under concurrent writers, with real commits: never a skipped change, same state at the end."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from registry.consent import optouts
from registry.consent.models import Consent, OptOut
from registry.events import sealing
from registry.events.services import Actor
from registry.extensions import db
from registry.senders.models import Sender
from registry.senders.services import SenderRef
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.sync import feed
from tests import factories
from tests.api.test_consents import EVIDENCE

POSTGRES = os.environ.get("REGISTRY_TEST_DATABASE_URL", "").startswith("postgresql")
on_postgres = pytest.mark.skipif(not POSTGRES, reason="concurrent writers need PostgreSQL")
pytestmark = pytest.mark.live


def _world(app: Flask) -> factories.World:
    with db.session() as session:
        return factories.world(session)


def _acme(world: factories.World) -> tuple[SenderRef, Actor]:
    sender = SenderRef(world.sender_ids["acme-cards"], "acme-cards", "Acme", "finance",
                       world.org_ids["acme"], False, "acme")  # fmt: skip
    return sender, Actor("org:acme", "api", org_id=world.org_ids["acme"])


def _follow(org_id: int, after: int) -> tuple[list[dict[str, Any]], int]:
    """Read to the end as GET /changes does: seal if no one else is, then page."""
    out: list[dict[str, Any]] = []
    while True:
        with db.session() as session:
            if feed.sequence(session, wait=False):
                session.commit()
            page = feed.read(session, org_id, after, 1000)
            session.commit()
        out += page.changes
        after = page.next
        if not page.has_more:
            return out, after


@on_postgres
def test_a_change_committed_late_is_numbered_after_what_readers_saw(app: Flask) -> None:
    world = _world(app)
    sender, actor = _acme(world)
    org = world.org_ids["acme"]
    with db.session() as slow, db.session() as fast:
        optouts.record_optout(slow, actor, sender, "+8613900000001", ["sms"], "app", None, None)
        optouts.record_optout(fast, actor, sender, "+8613900000002", ["sms"], "app", None, None)
        fast.commit()  # the later writer commits first
        seen, cursor = _follow(org, 0)
        assert [c["phone"] for c in seen] == ["+8613900000002"]
        slow.commit()
    late, _ = _follow(org, cursor)
    assert [c["phone"] for c in late] == ["+8613900000001"]
    assert late[0]["seq"] > cursor


@on_postgres
def test_concurrent_writers_and_a_reader_that_never_skips(app: Flask) -> None:
    world = _world(app)
    sender, actor = _acme(world)
    org = world.org_ids["acme"]
    writers, per_writer = 8, 60
    done = threading.Event()
    seen: list[dict[str, Any]] = []

    def write(w: int) -> None:
        rng = random.Random(w)
        with app.app_context():
            for i in range(per_writer):
                with db.session() as session:
                    phone = f"+86139{w:02d}{i:06d}"
                    optouts.record_optout(session, actor, sender, phone, ["sms"], "app", None, None)
                    time.sleep(rng.random() * 0.004)  # commit order differs from id order
                    session.commit()

    def read() -> None:
        cursor = 0
        with app.app_context():
            while not done.is_set():
                changes, cursor = _follow(org, cursor)
                seen.extend(changes)
            changes, cursor = _follow(org, cursor)
            seen.extend(changes)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    everything, _ = _follow(org, 0)
    assert len(everything) == writers * per_writer
    seqs = [c["seq"] for c in seen]
    assert seqs == sorted(set(seqs))  # ordered, no repeats
    assert seqs == [c["seq"] for c in everything]  # and nothing skipped


def _registry_state(app: Flask, org_id: int, watched: set[str]) -> dict[str, Any]:
    with db.session() as session:
        mine = select(Sender.id).where(Sender.organization_id == org_id)  # type: ignore[arg-type]
        cons = {
            c.id: (c.phone, c.status, c.channels)
            for c in session.scalars(select(Consent).where(Consent.sender_id.in_(mine)))  # type: ignore[attr-defined]
        }
        outs = Counter(
            (o.phone, o.channels)
            for o in session.scalars(select(OptOut).where(OptOut.sender_id.in_(mine)))  # type: ignore[attr-defined]
        )
        subs = {
            s.phone: subscribers.preferences_of(s)
            for s in session.scalars(select(Subscriber).where(Subscriber.phone.in_(watched)))  # type: ignore[attr-defined]
        }
    return {"consents": cons, "optouts": outs, "preferences": subs}


def _replay(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What a platform builds from the feed alone."""
    cons: dict[int, tuple[str, str, str]] = {}
    outs: Counter[tuple[str, str]] = Counter()
    prefs: dict[str, dict[str, Any]] = {}
    for c in changes:
        if c["type"].startswith("consent."):
            cons[c["consent_id"]] = (c["phone"], c["state"], ",".join(c["channels"]))
        elif c["type"] == "optout.recorded":
            outs[(c["phone"], ",".join(c["channels"]))] += 1
        elif c["type"] == "preferences.changed":
            prefs[c["phone"]] = c["preferences"]
    return {"consents": cons, "optouts": outs, "preferences": prefs}


@on_postgres
def test_a_platform_following_the_feed_ends_with_the_registrys_state(app: Flask) -> None:
    """Hundreds of concurrent consents, SMS replies, opt-outs, preference and carrier changes."""
    world = _world(app)
    acme, shop = factories_api(app, world)
    pool = [f"+861380000{i:04d}" for i in range(40)]
    watched = set(pool[::2])
    assert acme("POST", "/watchlist", {"phones": sorted(watched)})[0] == 200
    done = threading.Event()
    seen: list[dict[str, Any]] = []

    def act(w: int) -> None:
        rng = random.Random(1000 + w)
        for _ in range(100):
            phone = rng.choice(pool)
            api, sender, port = rng.choice([(acme, "acme-cards", "10690001"), (shop, "shop-deals", "10690002")])  # fmt: skip
            op = rng.random()
            if op < 0.3:
                status, _ = api("POST", "/consents", {"phone": phone, "sender": sender, "channels": rng.sample(["sms", "voice"], rng.randint(1, 2)), "evidence": EVIDENCE})  # fmt: skip
            elif op < 0.6:
                text = rng.choice(["Y", "STOP", "START", "退订", "STOPALL", "HELP"])
                status, _ = api("POST", "/inbound-sms", {"from": phone, "to": port, "text": text})
            elif op < 0.75:
                status, _ = api("POST", "/optouts", {"phone": phone, "sender": sender, "channels": ["voice"], "source": "call"})  # fmt: skip
            elif op < 0.97:
                with app.app_context(), db.session() as session:  # the citizen site
                    subscribers.set_preferences(
                        session, phone, dnd_voice=rng.random() < 0.5,
                        blocked_categories=rng.sample(["finance", "retail", "travel"], rng.randint(0, 2)),
                    )  # fmt: skip
                    session.commit()
                status = 200
            else:
                status, _ = factories_carrier(app, world)("POST", "/numbers/disconnections", {"disconnections": [{"phone": phone, "disconnected_at": "2026-01-01T00:00:00Z"}]})  # fmt: skip
            assert status in (200, 201, 202), status

    def read() -> None:
        cursor = 0
        while not done.is_set():
            cursor = _drain(acme, cursor, seen)
            time.sleep(0.01)
        _drain(acme, cursor, seen)

    threads = [threading.Thread(target=act, args=(w,)) for w in range(8)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    with app.app_context():
        registry = _registry_state(app, world.org_ids["acme"], watched)
    mirror = _replay(seen)
    assert len(seen) > 300
    assert mirror["consents"] == registry["consents"]
    assert mirror["optouts"] == registry["optouts"]
    default = {"dnd_voice": False, "dnd_sms": False, "blocked_categories": [], "quiet_hours": None}
    for phone in watched:
        assert mirror["preferences"].get(phone, default) == registry["preferences"].get(
            phone, default
        ), phone
    assert not {c["phone"] for c in seen if c["type"] == "preferences.changed"} - watched
    assert {c.get("sender") for c in seen} <= {"acme-cards", None}
    with app.app_context(), db.session() as session:
        sealing.seal(session)
        session.commit()
        from registry.events import audit

        assert audit.verify(session).broken is None


def _drain(api: Any, cursor: int, into: list[dict[str, Any]]) -> int:
    while True:
        status, page = api("GET", f"/changes?after={cursor}&limit=1000", None)
        assert status == 200, page
        into.extend(page["changes"])
        cursor = page["next"]
        if not page["has_more"]:
            return cursor


def _client(app: Flask, key: str) -> Any:
    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        client = app.test_client()
        resp = client.open(f"/api/v1{path}", method=method, json=body,
                           headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        return resp.status_code, resp.get_json()

    return call


def factories_api(app: Flask, world: factories.World) -> tuple[Any, Any]:
    return _client(app, world.keys["acme"]), _client(app, world.keys["shop"])


def factories_carrier(app: Flask, world: factories.World) -> Any:
    return _client(app, world.keys["carrier"])
