"""Per-key rate limits (Flask-Limiter), in memory and in Redis, with the error envelope."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import Api, other_app
from tests.factories import HOLDER, HOLDER2, World
from tests.web.test_site import csrf

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


# --- every write route is limited (issue 7) -----------------------------------

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
WRITE_LIMIT, CHECK_LIMIT = "7", "9"  # distinct budgets, so a header names the limit that applied
# Routes limited by something other than REGISTRY_RATELIMIT_WRITE, and why.
OWN_LIMITS = {
    "api.check": CHECK_LIMIT,  # REGISTRY_RATELIMIT_CHECK: checks are the volume traffic
    "api.check_batch": CHECK_LIMIT,
    "api.network_check": CHECK_LIMIT,  # a carrier's switch asks as often as dialers do
    "api.create_scrub": CHECK_LIMIT,  # a file of numbers to check: checks, in the background
    "api.confirm_consent_request": "30",  # guesses at a holder's one-time code
}


def api_write_routes(app: Flask) -> list[tuple[str, str, str]]:
    """Return (endpoint, method, path) for every /api/v1 route that changes something."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        for method in sorted((rule.methods or set()) & WRITE_METHODS):
            routes.append((rule.endpoint, method, re.sub(r"<[^>]+>", "1", rule.rule)))
    return routes


@pytest.mark.live
def test_every_api_write_route_is_rate_limited(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    with other_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_WRITE=f"{WRITE_LIMIT} per minute",
        REGISTRY_RATELIMIT_CHECK=f"{CHECK_LIMIT} per minute",
        # Consent requests also have a per-number limit; the headers name the limit with
        # the shortest window, so this one (tested below) keeps out of the way here.
        REGISTRY_RATELIMIT_CONSENT_NUMBER="1000 per hour",
    ) as limited:
        client = limited.test_client()
        headers = {"Authorization": f"Bearer {world.keys['acme']}"}
        routes = api_write_routes(limited)
        # The enumeration sees the API: checks, consents, opt-outs, webhooks, watchlist...
        assert {"api.check", "api.create_optout", "api.unwatch", "api.delete_webhook"} <= {
            endpoint for endpoint, _, _ in routes
        }
        wrong = []
        for endpoint, method, path in routes:
            # An empty body fails validation; the limiter has counted the call all the same.
            resp = client.open(path, method=method, json={}, headers=headers)
            expected = OWN_LIMITS.get(endpoint, WRITE_LIMIT)
            got = resp.headers.get("X-RateLimit-Limit")
            if got != expected:
                wrong.append(f"{method} {path} ({endpoint}): limit {got}, expected {expected}")
        assert wrong == []


@pytest.mark.live
def test_the_sites_sign_in_code_endpoints_are_limited(app: Flask, tmp_path: Path) -> None:
    with other_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_LOGIN_NUMBER="3 per 10 minutes",
        REGISTRY_RATELIMIT_LOGIN_CLIENT="4 per hour",
        REGISTRY_RATELIMIT_CODE_CLIENT="20 per 10 minutes",  # the default
    ) as limited:
        client = limited.test_client()
        # Asking for a code: per number and per client address (the header names the tighter).
        token = csrf(client, "/sign-in")
        asked = client.post("/sign-in", data={"phone": HOLDER, "csrf_token": token})
        assert asked.status_code == 302
        assert asked.headers.get("X-RateLimit-Limit") == "3"
        # Entering the code: 20 guesses per 10 minutes per client, on top of the code's own lock.
        token = csrf(client, f"/sign-in/code?phone={HOLDER}")
        guess = {"phone": HOLDER, "code": "000000", "csrf_token": token}
        guessed = client.post("/sign-in/code", data=guess)
        assert guessed.headers.get("X-RateLimit-Limit") == "20"


@pytest.mark.live
def test_exceeding_the_write_limit_is_429_in_the_error_envelope(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    optout = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call"}
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_WRITE="2 per minute"
    ) as limited:
        api = Api(limited.test_client(), world.keys["acme"])
        for _ in range(2):
            assert api.post("/optouts", optout).status_code == 201
        resp = api.post("/optouts", optout)
        assert resp.status_code == 429
        assert resp.headers["Content-Type"] == "application/json"
        error = resp.get_json()["error"]
        assert error["code"] == "rate_limited"
        assert "2 per 1 minute" in error["message"]
        assert error["details"] == []
        assert 0 < int(resp.headers["Retry-After"]) <= 60
        assert resp.headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.live
def test_guessing_a_consent_code_is_cut_off_at_30_a_minute(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    with other_app(app.config["REGISTRY"].database_url, tmp_path) as limited:
        api = Api(limited.test_client(), world.keys["acme"])
        # Each guess names another request id: the per-request lock after 5 wrong codes
        # does not stop an attacker who spreads guesses; the rate limit does.
        answers = [
            api.post(f"/consent-requests/{n}/confirm", {"code": "000000"}).status_code
            for n in range(31)
        ]
        assert 429 not in answers[:30]
        assert answers[30] == 429


@pytest.mark.live
def test_consent_codes_texted_to_one_number_are_limited_whoever_asks(
    app: Flask, tmp_path: Path
) -> None:
    world = make_world()
    ask = {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "wording": "Card offers"}
    with other_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_CONSENT_NUMBER="2 per hour",
    ) as limited:
        client = limited.test_client()
        acme, shop = Api(client, world.keys["acme"]), Api(client, world.keys["shop"])
        assert acme.post("/consent-requests", ask).status_code == 201
        # No Content-Type: the body is still read (as the API reads it), and still counted.
        plain = client.post(
            "/api/v1/consent-requests", data=json.dumps(ask), headers=acme.headers()
        )
        assert plain.status_code == 201
        # Another key, the same number written another way: over the number's budget.
        again = {**ask, "phone": "0086 138-0013-8000", "sender": "shop-deals"}
        resp = shop.post("/consent-requests", again)
        assert resp.status_code == 429
        assert resp.get_json()["error"]["code"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) > 0
        # Another number is not affected.
        assert acme.post("/consent-requests", {**ask, "phone": HOLDER2}).status_code == 201


@pytest.mark.live
def test_checks_on_numbers_without_a_record_have_their_own_limit(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mining the registry looks like checks on numbers the sender never had: limited, logged."""
    world = make_world()
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_COLD_CHECK="3 per minute"
    ) as limited:
        refused_before = cold_refusals(limited, "acme")  # the counter is per process
        api = Api(limited.test_client(), world.keys["acme"])
        # A number with a consent from this sender is not cold: never counted.
        resp = api.post("/consents", {"phone": HOLDER2, "sender": "acme-cards", "channels": ["sms"],
                                      "evidence": {"method": "web_form", "captured_at": "2026-01-01T00:00:00Z"}})  # fmt: skip
        assert resp.status_code == 201, resp.get_json()
        cold = [f"+8613900000{i:03d}" for i in range(10)]
        for phone in cold[:3]:
            assert api.post("/check", {**CHECK, "phone": phone}).status_code == 200
        with caplog.at_level("WARNING"):
            resp = api.post("/check", {**CHECK, "phone": cold[3]})
        assert resp.status_code == 429
        error = resp.get_json()["error"]
        assert error["code"] == "rate_limited"
        assert "no consent or opt-out" in error["message"]
        assert int(resp.headers["Retry-After"]) > 0
        assert any("cold checks refused" in r.getMessage() for r in caplog.records)
        # known numbers still answer, singly and in a batch with no cold number
        assert api.post("/check", {**CHECK, "phone": HOLDER2}).status_code == 200
        batch = {"sender": "acme-cards", "channel": "sms", "phones": [HOLDER2, "not a number"]}
        assert api.post("/check/batch", batch).status_code == 200
        # a batch with cold numbers is refused whole, and nothing of it is logged
        resp = api.post("/check/batch", {**batch, "phones": [HOLDER2, *cold[4:]]})
        assert resp.status_code == 429
        from sqlalchemy import text

        from registry.extensions import db

        with db.session() as s:
            logged = s.scalar(
                text("SELECT count(*) FROM check_log WHERE phone = :p"), {"p": cold[4]}
            )
        assert logged == 0
        # another organization has its own budget
        other = Api(limited.test_client(), world.keys["shop"])
        assert (
            other.post("/check", {**CHECK, "sender": "shop-deals", "phone": cold[5]}).status_code
            == 200
        )
        assert cold_refusals(limited, "acme") - refused_before == 2


def cold_refusals(app: Flask, organization: str) -> float:
    """Return the organization's count of cold-check refusals, as /metrics shows it."""
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    found = re.search(
        rf'anning_cold_check_refusals_total\{{organization="{organization}"\}} ([0-9.]+)', metrics
    )
    return float(found.group(1)) if found else 0.0


# --- a made-up key buys no fresh budget (issue 13) ------------------------------


def made_up_keys(world: World) -> list[dict[str, str]]:
    """Return Authorization headers a client could invent, and one real key (not the site's)."""
    fake = [{"Authorization": f"Bearer ann_fake{i:04d}_{'x' * 32}"} for i in range(5)]
    return [*fake, {"Authorization": f"Bearer {world.keys['acme']}"}]


@pytest.mark.live
def test_a_bearer_header_is_no_new_bucket_on_the_site(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_LOGIN_CLIENT="3 per hour"
    ) as limited:
        client = limited.test_client()
        answers = []
        # Another number each time (the per-number limit stays out of it), another key each time.
        for i, headers in enumerate(made_up_keys(world)):
            token = csrf(client, "/sign-in")
            resp = client.post(
                "/sign-in",
                data={"phone": f"+8613900000{i:03d}", "csrf_token": token},
                headers=headers,
            )
            answers.append(resp.status_code)
        assert answers == [302, 302, 302, 429, 429, 429]


@pytest.mark.live
def test_a_bearer_header_is_no_new_bucket_on_the_console(app: Flask, tmp_path: Path) -> None:
    from tests.admin.conftest import csrf as console_csrf

    world = make_world()
    with other_app(app.config["REGISTRY"].database_url, tmp_path) as limited:
        limited.config["REGISTRY"] = replace(
            limited.config["REGISTRY"], ratelimit_staff_login="3 per hour"
        )
        client = limited.test_client()
        answers = []
        for headers in made_up_keys(world):
            token = console_csrf(client, "/admin/login")
            form = {"csrf_token": token, "email": "nobody@regulator.example",
                    "password": "wrong", "code": "000000"}  # fmt: skip
            answers.append(client.post("/admin/login", data=form, headers=headers).status_code)
        assert 429 not in answers[:3]
        assert answers[3:] == [429, 429, 429]


@pytest.mark.live
def test_an_api_limit_is_keyed_by_the_key_only_once_it_is_authenticated(
    app: Flask, tmp_path: Path
) -> None:
    world = make_world()
    with limited_app(app, tmp_path, "memory://") as limited:
        client = limited.test_client()
        # A made-up key is refused before any limit counts it: 401, never 429, however often.
        for headers in made_up_keys(world)[:-1]:
            resp = client.post("/api/v1/check", json=CHECK, headers=headers)
            assert resp.status_code == 401
            assert "X-RateLimit-Limit" not in resp.headers
        # The real key has its own budget, whatever was tried before.
        api = Api(client, world.keys["acme"])
        assert [api.post("/check", CHECK).status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.live
def test_a_storage_that_fails_is_a_503_not_a_500(app: Flask, tmp_path: Path) -> None:
    world = make_world()
    (tmp_path / "not-a-folder").write_text("")
    broken = f"sqlite:///{tmp_path / 'not-a-folder' / 'ratelimits.sqlite3'}"
    with limited_app(app, tmp_path, broken) as limited:
        client = limited.test_client()
        resp = Api(client, world.keys["acme"]).post("/check", CHECK)
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "5"
        token = csrf(client, "/sign-in")
        page = client.post("/sign-in", data={"phone": HOLDER, "csrf_token": token})
        assert page.status_code == 503
        assert "Traceback" not in page.get_data(as_text=True)
