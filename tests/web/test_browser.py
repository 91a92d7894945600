"""The citizen site in real Chromium: sign in with the texted code, set do-not-disturb,
see a check answer `dnd`, confirm a consent, block a sender, complain, switch language.

Serves the app on 127.0.0.1 in a thread against committed data and drives
Debian's Chromium through Playwright; skipped when Chromium is absent.
``ANNING_SCREENSHOTS=1`` refreshes docs/screenshots/site-*.png (phone and desktop).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from registry.consent import services as consents
from registry.extensions import db
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from tests import factories
from tests.conftest import needs_chromium
from tests.factories import HOLDER

DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]


def shoot(browser, url: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshot a page at phone and desktop width (into docs/ only when asked)."""
    folder = DOCS_SHOTS if os.environ.get("ANNING_SCREENSHOTS") else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    for label, width, height in (("phone", 390, 844), ("desktop", 1366, 900)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.context.add_cookies(browser._anning_cookies)  # the signed-in session
        page.goto(url)
        page.screenshot(path=str(folder / f"site-{name}-{label}.png"), full_page=True)
        page.close()


def check(base: str, key: str, sender: str = "acme-cards") -> str:
    body = json.dumps(
        {"phone": HOLDER, "sender": sender, "channel": "sms", "at": "2030-01-15T12:00:00+08:00"}
    ).encode()
    req = urllib.request.Request(
        f"{base}/api/v1/check",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.load(resp)["reason"])


def test_holder_flow_in_chromium(app: Flask, live_server: str, chromium) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        world = factories.world(s)
        shop = resolve_sender(
            s,
            Caller(world.org_ids["shop"], "shop", "Shop", "platform", None),
            "shop-deals",
            "consent",
            utcnow(),
        )
        consents.create_consent(
            s, app.config["REGISTRY"], consents.Actor("org:shop", "api", world.org_ids["shop"]), shop, HOLDER, ["sms"],
            consents.Evidence("web_form", utcnow(), "Weekly deals by SMS", "signup-77"),
        )  # fmt: skip
        s.commit()

    page = chromium.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"{live_server}/sign-in")
    page.get_by_label(re.compile("mobile number|手机号", re.I)).fill("138 0013 8000")
    page.get_by_role("button").filter(has_text=re.compile("code|验证码", re.I)).click()
    with db.session() as s:
        body = s.scalars(
            select(SmsMessage.body)
            .where(SmsMessage.kind == "login_code")
            .order_by(SmsMessage.id.desc())
        ).first()  # type: ignore[union-attr]
    assert body is not None
    page.get_by_label(re.compile("6-digit code", re.I)).fill(re.search(r"\d{6}", body).group(0))  # type: ignore[union-attr]
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    assert page.url.endswith("/me")

    # Do-not-disturb on texts: the next check is denied with `dnd`.
    assert check(live_server, world.keys["acme"]) == "no_consent"
    page.get_by_label(re.compile("No marketing text messages", re.I)).check()
    page.get_by_role("button", name=re.compile("^Save$", re.I)).click()
    assert page.get_by_role("status").count() == 1
    assert check(live_server, world.keys["acme"]) == "dnd"

    # Confirm ShopMall's pending consent, then block Acme by the number it texts from.
    page.goto(f"{live_server}/me/senders")
    page.get_by_role("button", name=re.compile("Yes, I agree", re.I)).click()
    assert check(live_server, world.keys["shop"], "shop-deals") == "consent"
    page.get_by_label(re.compile("Sender name, code", re.I)).fill("10690001")
    page.get_by_role("button", name=re.compile("^Block$", re.I)).click()
    assert check(live_server, world.keys["acme"]) == "opted_out"

    # A complaint, visible with its status.
    page.goto(f"{live_server}/me/complaints")
    page.get_by_label(re.compile("number or SMS port", re.I)).fill("10690001")
    page.get_by_label(re.compile("text message", re.I)).check()
    page.get_by_label(re.compile("When", re.I)).fill("2026-11-20T10:30")
    page.get_by_label(re.compile("What happened", re.I)).fill("A card offer although I said no.")
    page.get_by_role("button", name=re.compile("Send the complaint", re.I)).click()
    assert "waiting for an answer" in page.content()  # its status, in words

    # Every page at phone and desktop width, signed in.
    chromium._anning_cookies = page.context.cookies()
    for name, path in (("preferences", "/me"), ("senders", "/me/senders"), ("checks", "/me/checks"),
                       ("complaints", "/me/complaints"), ("data", "/me/data")):  # fmt: skip
        shoot(chromium, live_server + path, name)

    # Switch language and find the choice remembered.
    page.get_by_role("button", name=re.compile("English|中文")).click()
    lang = page.locator("html").get_attribute("lang")
    page.goto(f"{live_server}/me")
    assert page.locator("html").get_attribute("lang") == lang
    page.close()
