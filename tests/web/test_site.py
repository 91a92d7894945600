"""The citizen site through the whole app: sign in by SMS code, then every page's job."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.sms.models import SmsMessage
from registry.subscribers.models import LoginCode
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="(?:\w-)?csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def once(client: FlaskClient, path: str = "/me/complaints") -> str:
    """Return the one-time token of the form on ``path``."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="once" type="hidden" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def last_code(session: Session, phone: str) -> str:
    body = session.scalars(
        select(SmsMessage.body)
        .where(SmsMessage.phone == phone, SmsMessage.kind == "login_code")
        .order_by(SmsMessage.id.desc())  # type: ignore[union-attr]
    ).first()
    assert body is not None
    return re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]


def sign_in(client: FlaskClient, session: Session, typed: str = "138 0013 8000") -> None:
    resp = client.post("/sign-in", data={"phone": typed, "csrf_token": csrf(client, "/sign-in")})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    phone = resp.headers["Location"].split("phone=")[1].replace("%2B", "+")
    token = csrf(client, f"/sign-in/code?phone={phone}")
    resp = client.post(
        "/sign-in/code",
        data={"phone": phone, "code": last_code(session, phone), "csrf_token": token},
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    assert resp.headers["Location"].endswith("/me")


@pytest.fixture
def holder(client: FlaskClient, session: Session, world: World) -> FlaskClient:
    sign_in(client, session)
    return client


def test_sign_in_then_dnd_makes_checks_deny(holder: FlaskClient, acme: Api) -> None:
    token = csrf(holder, "/me")
    resp = holder.post(
        "/me", data={"dnd_sms": "y", "quiet_hours": "", "csrf_token": token}, follow_redirects=True
    )
    assert "Saved" in resp.get_data(as_text=True) or "保存" in resp.get_data(as_text=True)
    assert acme.check(HOLDER)["reason"] == "dnd"
    assert acme.check(HOLDER, channel="voice")["reason"] == "no_consent"


def test_category_block_and_quiet_hours(holder: FlaskClient, acme: Api) -> None:
    token = csrf(holder, "/me")
    holder.post(
        "/me", data={"categories": ["finance"], "quiet_hours": "22:00-08:00", "csrf_token": token}
    )
    assert acme.check(HOLDER)["reason"] == "category_blocked"
    bad = holder.post("/me", data={"quiet_hours": "late", "csrf_token": csrf(holder, "/me")})
    assert bad.status_code == 200
    assert "12:00-14:00" in bad.get_data(as_text=True)


def test_wrong_expired_and_reused_codes(
    client: FlaskClient, session: Session, world: World
) -> None:
    client.post("/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")})
    code = last_code(session, HOLDER)
    wrong = "000000" if code != "000000" else "111111"
    token = csrf(client, f"/sign-in/code?phone={HOLDER}")
    resp = client.post("/sign-in/code", data={"phone": HOLDER, "code": wrong, "csrf_token": token})
    assert resp.status_code == 200
    assert session.scalars(select(LoginCode.attempts)).first() == 1
    row = session.scalars(select(LoginCode)).first()
    assert row is not None
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    resp = client.post("/sign-in/code", data={"phone": HOLDER, "code": code, "csrf_token": token})
    assert resp.status_code == 200
    assert client.get("/me").status_code == 302  # not signed in
    assert code not in (row.code_hash or "")


def test_five_wrong_codes_lock(client: FlaskClient, session: Session, world: World) -> None:
    client.post("/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")})
    code = last_code(session, HOLDER)
    token = csrf(client, f"/sign-in/code?phone={HOLDER}")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        client.post("/sign-in/code", data={"phone": HOLDER, "code": wrong, "csrf_token": token})
    client.post("/sign-in/code", data={"phone": HOLDER, "code": code, "csrf_token": token})
    assert client.get("/me").status_code == 302


def test_malformed_number_and_missing_csrf(client: FlaskClient, world: World, app) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/sign-in", data={"phone": "hello", "csrf_token": csrf(client, "/sign-in")})
    assert resp.status_code == 200
    assert "There is a problem" in resp.get_data(as_text=True) or "出现问题" in resp.get_data(
        as_text=True
    )
    no_token = client.post("/sign-in", data={"phone": HOLDER})
    assert no_token.status_code == 400
    # In the holder's language: zh-CN by default, English when the browser asks for it.
    assert "刷新页面" in no_token.get_data(as_text=True)
    from flask_babel import refresh

    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    english = client.post("/sign-in", data={"phone": HOLDER}, headers={"Accept-Language": "en"})
    assert "reload the page" in english.get_data(as_text=True)
    assert client.get("/me").status_code == 302  # not signed in: sent to sign in


def test_block_sender_by_its_number_and_confirm_pending(
    holder: FlaskClient, acme: Api, shop: Api
) -> None:
    shop.post("/consents", {"phone": HOLDER, "sender": "shop-deals", "channels": ["sms"],
                            "evidence": {"method": "web_form", "captured_at": utcnow().isoformat(), "wording": "Deals by SMS"}})  # fmt: skip
    page = holder.get("/me/senders").get_data(as_text=True)
    assert "Shop-Deals" in page
    assert "Deals by SMS" in page
    consent_id = re.search(r'name="c-consent_id" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    token = csrf(holder, "/me/senders")
    holder.post(
        "/me/senders",
        data={"c-consent_id": consent_id, "c-action": "confirm", "c-csrf_token": token},
    )
    assert shop.check(HOLDER, sender="shop-deals")["reason"] == "consent"
    holder.post(
        "/me/senders", data={"b-query": "10690001", "b-csrf_token": csrf(holder, "/me/senders")}
    )
    assert acme.check(HOLDER)["reason"] == "opted_out"


def test_another_holders_consent_cannot_be_touched(holder: FlaskClient, shop: Api) -> None:
    other = shop.post("/consents", {"phone": HOLDER2, "sender": "shop-deals", "channels": ["sms"],
                                    "evidence": {"method": "web_form", "captured_at": utcnow().isoformat()}}).get_json()  # fmt: skip
    token = csrf(holder, "/me/senders")
    resp = holder.post(
        "/me/senders",
        data={"c-consent_id": str(other["id"]), "c-action": "confirm", "c-csrf_token": token},
    )
    assert resp.status_code == 404
    assert shop.get(f"/consents/{other['id']}").get_json()["status"] == "pending"


def test_who_checked_and_complaint_with_escaped_text(holder: FlaskClient, acme: Api) -> None:
    acme.check(HOLDER)
    assert "Acme" in holder.get("/me/checks").get_data(as_text=True)
    token = csrf(holder, "/me/complaints")
    resp = holder.post("/me/complaints", data={
        "address": "10690001", "channel": "sms", "contacted_at": "2026-01-02T10:00",
        "text": "<script>alert(1)</script>", "csrf_token": token, "once": once(holder),
    }, follow_redirects=True)  # fmt: skip
    page = resp.get_data(as_text=True)
    assert "&lt;script&gt;" in page
    assert "<script>alert" not in page
    assert "待处理" in page  # its status, in words
    too_long = holder.post("/me/complaints", data={
        "address": "10690001", "channel": "sms", "contacted_at": "2026-01-02T10:00",
        "text": "x" * 1001, "csrf_token": csrf(holder, "/me/complaints"),
    })  # fmt: skip
    assert too_long.status_code == 200


def test_my_data_download_and_security_headers(holder: FlaskClient) -> None:
    holder.post("/me", data={"dnd_voice": "y", "csrf_token": csrf(holder, "/me")})
    resp = holder.get("/me/data.json")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["phone"] == HOLDER
    assert data["preferences"]["dnd_voice"] is True
    assert any(e["type"] == "preferences.changed" for e in data["events"])
    assert "default-src 'self'" in holder.get("/me").headers["Content-Security-Policy"]


def test_sign_out_everywhere(holder: FlaskClient, client: FlaskClient) -> None:
    holder.post("/sign-out-everywhere", data={"csrf_token": csrf(holder, "/me")})
    assert holder.get("/me").status_code == 302


def test_language_switch_is_remembered(client: FlaskClient) -> None:
    from flask_babel import refresh

    token = csrf(client, "/")
    client.post("/lang/en", data={"csrf_token": token})
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    assert 'lang="en"' in client.get("/").get_data(as_text=True)
    client.post("/lang/zh_CN", data={"csrf_token": csrf(client, "/")})
    refresh()
    assert 'lang="zh-CN"' in client.get("/").get_data(as_text=True)


@pytest.mark.live
def test_codes_are_rate_limited_per_number_with_a_clear_message(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import other_app

    with other_app(
        app.config["REGISTRY"].database_url,
        tmp_path,
        REGISTRY_RATELIMIT_LOGIN_NUMBER="2 per 10 minutes",
    ) as limited:
        client = limited.test_client()
        for _ in range(2):
            assert (
                client.post(
                    "/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")}
                ).status_code
                == 302
            )
        resp = client.post(
            "/sign-in", data={"phone": "+86 138 0013 8000", "csrf_token": csrf(client, "/sign-in")}
        )
        assert resp.status_code == 429
        assert "请等几分钟再试" in resp.get_data(as_text=True)  # in the page's language
        assert int(resp.headers["Retry-After"]) > 0
        # Another number is not held up by this one.
        assert (
            client.post(
                "/sign-in", data={"phone": HOLDER2, "csrf_token": csrf(client, "/sign-in")}
            ).status_code
            == 302
        )


def test_unblock_lifts_only_the_block(holder: FlaskClient, acme: Api, world: World) -> None:
    holder.post(
        "/me/senders", data={"b-query": "acme-cards", "b-csrf_token": csrf(holder, "/me/senders")}
    )
    assert acme.check(HOLDER)["reason"] == "opted_out"
    page = holder.get("/me/senders").get_data(as_text=True)
    sender_id = re.search(r'name="u-sender_id" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    holder.post(
        "/me/senders", data={"u-sender_id": sender_id, "u-csrf_token": csrf(holder, "/me/senders")}
    )
    assert acme.check(HOLDER)["reason"] == "no_consent"
    assert 'name="u-sender_id"' not in holder.get("/me/senders").get_data(as_text=True)
    again = holder.post(
        "/me/senders",
        data={"u-sender_id": sender_id, "u-csrf_token": csrf(holder, "/me/senders")},
        follow_redirects=True,
    )
    assert again.status_code == 200


def test_a_used_code_cannot_sign_in_again(
    client: FlaskClient, session: Session, world: World
) -> None:
    sign_in(client, session)
    code = last_code(session, HOLDER)
    client.post("/sign-out", data={"csrf_token": csrf(client, "/me")})
    assert client.get("/me").status_code == 302
    token = csrf(client, f"/sign-in/code?phone={HOLDER}")
    resp = client.post("/sign-in/code", data={"phone": HOLDER, "code": code, "csrf_token": token})
    assert resp.status_code == 200  # the form again, with the reason
    assert client.get("/me").status_code == 302


def test_another_holders_form_token_shows_nothing_of_theirs(
    holder: FlaskClient,
    app,
    session: Session,  # type: ignore[no-untyped-def]
) -> None:
    token = once(holder)
    form = {"address": "10690001", "channel": "sms", "contacted_at": "2026-01-02T10:00"}
    made = holder.post(
        "/me/complaints", data={**form, "once": token, "csrf_token": csrf(holder, "/me/complaints")}
    )
    assert made.status_code == 302
    other = app.test_client()
    # One app context for the whole test: Flask-WTF's per-request token cache must not
    # hand the first client's token to the second.
    g.pop("csrf_token", None)
    sign_in(other, session, "139 0013 9000")
    # The second holder replays the first one's token: refused, and the first's complaint unseen.
    resp = other.post(
        "/me/complaints",
        data={**form, "once": token, "csrf_token": csrf(other, "/me/complaints")},
    )
    assert resp.status_code == 404
    assert "10690001" not in resp.get_data(as_text=True)
    assert "10690001" not in other.get("/me/complaints").get_data(as_text=True)


def test_sign_out_ends_the_session_on_the_server(holder: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    copied = holder.get_cookie("anning_holder")
    assert copied is not None
    holder.post("/sign-out", data={"csrf_token": csrf(holder, "/me")})
    thief = app.test_client()
    thief.set_cookie("anning_holder", copied.value)
    assert thief.get("/me").status_code == 302
