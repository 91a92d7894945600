"""Per-key rate limits (Flask-Limiter), in memory and in Redis, with the error envelope."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import Api, other_app
from tests.factories import HOLDER, World

CHECK = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}


def limited_app(app: Flask, tmp_path: Path, storage: str):  # type: ignore[no-untyped-def]
    return other_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_CHECK="3 per minute",
        REGISTRY_RATELIMIT_STORAGE_URL=storage,
    )


def make_world() -> World:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        return factories.world(s)


@pytest.mark.live
def test_limit_is_per_key_with_retry_after(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    with limited_app(app, tmp_path, "memory://") as limited:
        api = Api(limited.test_client(), world.keys["acme"])
        for _ in range(3):
            assert api.post("/check", CHECK).status_code == 200
        resp = api.post("/check", CHECK)
        assert resp.status_code == 429
        assert resp.get_json()["error"]["code"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) > 0
        # Another key of another organization has its own budget.
        other = Api(limited.test_client(), world.keys["shop"])
        assert other.post("/check", {**CHECK, "sender": "shop-deals"}).status_code == 200


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("REGISTRY_TEST_REDIS_URL"),
    reason="set REGISTRY_TEST_REDIS_URL to test Redis storage",
)
def test_limit_shared_through_redis(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    url = os.environ["REGISTRY_TEST_REDIS_URL"]
    key = world.keys["acme"]
    # Two app instances (as two servers) share one budget through Redis.
    with (
        limited_app(app, tmp_path / "a", url) as first,
        limited_app(app, tmp_path / "b", url) as second,
    ):
        api1, api2 = Api(first.test_client(), key), Api(second.test_client(), key)
        for api in (api1, api2, api1):
            assert api.post("/check", CHECK).status_code == 200
        assert api2.post("/check", CHECK).status_code == 429


def test_memory_storage_starts_no_thread_per_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from limits.storage import storage_from_string

    from registry.ratelimit import InProcessStorage

    storage = storage_from_string("memory://")
    assert isinstance(storage, InProcessStorage)
    started: list[object] = []
    monkeypatch.setattr(threading.Timer, "start", lambda self: started.append(self))
    for _ in range(100):
        storage.incr("k", expiry=60)
    assert storage.get("k") == 100
    assert started == []
    storage.incr("short", expiry=0.01)
    time.sleep(0.02)
    assert storage.get("short") == 0  # expired keys still read as zero
