"""Per-key rate limits (Flask-Limiter), in memory and in Redis, with the error envelope."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import Api, make_app
from tests.factories import HOLDER, World


def limited_app(app: Flask, tmp_path: Path, storage: str) -> Flask:
    return make_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_CHECK="3 per minute",
        REGISTRY_RATELIMIT_STORAGE_URL=storage,
    )


def exhaust(api: Api) -> None:
    for _ in range(3):
        assert (
            api.post(
                "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
            ).status_code
            == 200
        )
    resp = api.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})
    assert resp.status_code == 429
    assert resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) > 0


@pytest.mark.live
def test_limit_is_per_key_with_retry_after(app: Flask, tmp_path: Path) -> None:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        world: World = factories.world(s)
    limited = limited_app(app, tmp_path, "memory://")
    exhaust(Api(limited.test_client(), world.keys["acme"]))
    # Another key of another organization has its own budget.
    other = Api(limited.test_client(), world.keys["shop"])
    assert (
        other.post(
            "/check", {"phone": HOLDER, "sender": "shop-deals", "channel": "sms"}
        ).status_code
        == 200
    )


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("REGISTRY_TEST_REDIS_URL"),
    reason="set REGISTRY_TEST_REDIS_URL to test Redis storage",
)
def test_limit_shared_through_redis(app: Flask, tmp_path: Path) -> None:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        world: World = factories.world(s)
    url = os.environ["REGISTRY_TEST_REDIS_URL"]
    # Two app instances (as two servers) share one budget through Redis.
    first = limited_app(app, tmp_path / "a", url)
    second = limited_app(app, tmp_path / "b", url)
    key = world.keys["acme"]
    api1, api2 = Api(first.test_client(), key), Api(second.test_client(), key)
    for api in (api1, api2, api1):
        assert (
            api.post(
                "/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
            ).status_code
            == 200
        )
    assert (
        api2.post("/check", {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}).status_code
        == 429
    )
