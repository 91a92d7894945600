"""GET /check.txt: the single check in one plain-text line, for dial plans and SIP proxies."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.checks.models import CheckLog
from registry.extensions import db
from registry.subscribers import services as subscribers
from tests import factories
from tests.api.test_check import give_consent
from tests.conftest import NOON, Api, other_app
from tests.factories import HOLDER, HOLDER2, World


def ask(api: Api, headers: dict[str, str] | None = None, **params: str) -> Any:
    """GET /check.txt with ``params`` (at NOON unless given) and the client's bearer key."""
    params.setdefault("at", NOON)
    path = "/api/v1/check.txt?" + urlencode(params)
    return api.client.get(path, headers=api.headers() if headers is None else headers)


def line(resp: Any) -> str:
    """Return the body, asserting it is one text line."""
    assert resp.mimetype == "text/plain", resp.data
    text = resp.get_data(as_text=True)
    assert text.endswith("\n"), text
    assert text.count("\n") == 1, text
    return str(text[:-1])


def test_consent_allows_in_one_line_with_a_verifiable_receipt(
    acme: Api, session: Session, world: World
) -> None:
    give_consent(session, world)
    resp = ask(acme, phone="138 0013 8000", sender="acme-cards", channel="voice")
    assert resp.status_code == 200
    assert line(resp) == "ALLOW consent"
    receipt = acme.get(f"/receipts/{resp.headers['X-Anning-Check-Id']}").get_json()
    assert (receipt["phone"], receipt["decision"], receipt["reason"], receipt["channel"]) == (
        HOLDER, "allow", "consent", "voice",
    )  # fmt: skip
    assert receipt["checked_at"] == resp.headers["X-Anning-Checked-At"]


def test_voice_dnd_denies_and_is_logged(acme: Api, session: Session) -> None:
    subscribers.set_preferences(session, HOLDER2, dnd_voice=True)
    session.commit()
    before = session.scalar(
        select(func.count()).select_from(CheckLog).where(CheckLog.phone == HOLDER2)
    )  # type: ignore[arg-type]
    resp = ask(acme, phone=HOLDER2, sender="acme-cards", channel="voice")
    assert (resp.status_code, line(resp)) == (200, "DENY dnd")
    after = session.scalar(
        select(func.count()).select_from(CheckLog).where(CheckLog.phone == HOLDER2)
    )  # type: ignore[arg-type]
    assert after == (before or 0) + 1  # the holder sees this check under "who checked my number"


def test_quiet_hours_carry_next_allowed_at(acme: Api, session: Session, world: World) -> None:
    give_consent(session, world)
    resp = ask(
        acme, phone=HOLDER, sender="acme-cards", channel="sms", at="2030-01-15T22:30:00+08:00"
    )
    assert line(resp) == "DENY quiet_hours 2030-01-16T00:00:00Z"


def test_the_same_answer_as_the_json_check(acme: Api, session: Session, world: World) -> None:
    give_consent(session, world, channels=("sms",))
    for phone, channel in ((HOLDER, "sms"), (HOLDER, "voice"), (HOLDER2, "sms")):
        answer = acme.check(phone, channel=channel)
        words = line(ask(acme, phone=phone, sender="acme-cards", channel=channel)).split()
        assert words[:2] == [answer["decision"].upper(), answer["reason"]]


def test_a_calling_address_is_taken_and_a_malformed_one_refused(acme: Api) -> None:
    ok = ask(
        acme, phone=HOLDER, sender="acme-cards", channel="voice", **{"from": "+86 571 8888 0000"}
    )
    assert ok.status_code == 200, ok.data
    bad = ask(acme, phone=HOLDER, sender="acme-cards", channel="voice", **{"from": "sip:x@y"})
    assert bad.status_code == 422
    # As the JSON check answers it (issue 15's ``from``): invalid_phone, naming the input.
    assert line(bad).startswith("ERROR invalid_phone ")
    assert "sip:x@y" in line(bad)


def test_another_organizations_sender_is_refused(shop: Api) -> None:
    resp = ask(shop, phone=HOLDER, sender="acme-cards", channel="voice")
    assert resp.status_code == 403
    assert line(resp).startswith("ERROR forbidden ")


def test_the_key_as_the_password_of_basic_auth(acme: Api, client: FlaskClient) -> None:
    def basic(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    ok = ask(acme, basic("trunk-1", acme.key), phone=HOLDER, sender="acme-cards", channel="sms")
    assert (ok.status_code, line(ok)) == (200, "DENY no_consent")
    assert ask(acme, basic(acme.key, ""), phone=HOLDER, sender="acme-cards", channel="sms").status_code == 200  # fmt: skip
    wrong = ask(
        acme, basic("trunk-1", "not-a-key"), phone=HOLDER, sender="acme-cards", channel="sms"
    )
    assert wrong.status_code == 401
    assert line(wrong).startswith("ERROR unauthorized ")
    none = ask(acme, {}, phone=HOLDER, sender="acme-cards", channel="sms")
    assert none.status_code == 401
    assert "HTTP Basic" in line(none)
    # The JSON API keeps to bearer keys.
    check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
    assert client.post("/api/v1/check", json=check, headers=basic("t", acme.key)).status_code == 401


@pytest.mark.parametrize(
    ("query", "status", "code", "words"),
    [
        ({"phone": "12", "sender": "acme-cards", "channel": "voice"}, 422, "invalid_phone", "phone"),
        ({"sender": "acme-cards", "channel": "voice"}, 422, "validation_error", "phone:"),
        ({"phone": HOLDER, "sender": "acme-cards", "channel": "fax"}, 422, "validation_error", "channel:"),
        ({"phone": HOLDER, "sender": "nobody", "channel": "voice"}, 422, "unknown_sender", "nobody"),
        ({"phone": HOLDER, "sender": "acme-cards", "channel": "voice", "at": "yesterday"}, 422, "validation_error", "at:"),
        ({"phone": HOLDER, "sender": "acme-cards", "channel": "voice", "bogus": "1"}, 422, "validation_error", "bogus:"),
        ({"phone": "+86138\n00138000", "sender": "acme-cards", "channel": "voice"}, 422, "invalid_phone", "phone"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line(
    acme: Api, query: dict[str, str], status: int, code: str, words: str
) -> None:
    resp = ask(acme, **query)
    assert resp.status_code == status
    text = line(resp)
    assert text.startswith(f"ERROR {code} "), text
    assert words in text, text


def test_repeated_parameters_and_other_methods(acme: Api) -> None:
    twice = acme.client.get(
        "/api/v1/check.txt?phone=%2B8613800138000&phone=%2B8613900139000&sender=acme-cards&channel=sms",
        headers=acme.headers(),
    )
    assert twice.status_code == 422
    assert "once: phone" in line(twice)
    post = acme.client.post("/api/v1/check.txt", headers=acme.headers())
    assert post.status_code == 405
    assert line(post).startswith("ERROR method_not_allowed ")


def test_a_key_in_the_url_is_refused_and_not_echoed(acme: Api) -> None:
    alone = ask(acme, {}, phone=HOLDER, sender="acme-cards", channel="sms", key=acme.key)
    assert alone.status_code == 401
    assert acme.key not in alone.get_data(as_text=True)
    beside = ask(acme, phone=HOLDER, sender="acme-cards", channel="sms", key=acme.key)
    assert beside.status_code == 422
    assert line(beside).startswith("ERROR validation_error ")
    assert acme.key not in beside.get_data(as_text=True)


def test_documented_as_text(client: FlaskClient) -> None:
    op = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/check.txt"]["get"]
    assert {"phone", "sender", "channel", "from"} <= {p["name"] for p in op["parameters"]}
    ok = op["responses"]["200"]
    assert set(ok["content"]) == {"text/plain"}
    assert "X-Anning-Check-Id" in ok["headers"]
    for status in ("401", "403", "405", "422", "429", "503"):
        if status in op["responses"]:
            assert set(op["responses"][status]["content"]) == {"text/plain"}, status
    assert {"401", "403", "422", "429", "503"} <= set(op["responses"])


@pytest.mark.live  # a second app (its own limits) sees only committed data
def test_the_check_limit_applies(app: Flask, tmp_path: Path) -> None:
    with db.session() as session:
        world = factories.world(session)
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_CHECK="1 per minute"
    ) as limited:
        api = Api(limited.test_client(), world.keys["acme"])
        assert ask(api, phone=HOLDER, sender="acme-cards", channel="sms").status_code == 200
        over = ask(api, phone=HOLDER, sender="acme-cards", channel="sms")
        assert over.status_code == 429
        assert int(over.headers["Retry-After"]) >= 1
        assert line(over).startswith("ERROR rate_limited ")


@pytest.mark.live
def test_an_unreachable_database_is_one_503_line(tmp_path: Path) -> None:
    query = urlencode({"phone": HOLDER, "sender": "acme-cards", "channel": "voice"})
    # No such folder: the database cannot be opened.
    with other_app(f"sqlite:///{tmp_path / 'gone' / 'r.sqlite3'}", tmp_path) as gone:
        resp = gone.test_client().get(
            f"/api/v1/check.txt?{query}", headers={"Authorization": "Bearer ann_abcdefgh_x"}
        )
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert line(resp) == "ERROR unavailable the registry's database is unavailable; retry shortly"
