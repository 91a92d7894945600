"""A complaint forwarded by SMS, end to end, through real HTTP and real Chromium.

The holder forwards an unwanted text to the registry's own number (the gateway
posts it); the merchant and its agent read it in their change feeds and the
complaint list, and answer through the API; the financial sector desk and the
regulator reply in the console; the holder reads every step on the site, in
English and in Chinese, and is texted when the final answer is given.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select

from registry.admin import accounts
from registry.extensions import db
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.sms.models import SmsMessage
from tests import factories
from tests.admin.conftest import PASSWORD
from tests.axe import assert_accessible
from tests.conftest import needs_chromium
from tests.factories import HOLDER
from tests.web.test_site_walk import CODES, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]


def _http(base: str, key: str, path: str, body: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(
        f"{base}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _console(browser: Any, base: str, email: str, secret: str, complaint_id: int, body: str,
             status: str = "") -> None:  # fmt: skip
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
    page.goto(f"{base}/admin/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    page.goto(f"{base}/admin/complaints/{complaint_id}")
    page.fill("#body", body)
    if status:
        page.select_option("#then_status", status)
    page.click("#reply button[type=submit]")
    page.wait_for_selector("text=Reply sent")
    page.close()


def test_a_forwarded_text_reaches_merchant_and_agent_and_the_holder_reads_every_step(
    app: Flask, live_server: str, chromium: Any
) -> None:
    settings = app.config["REGISTRY"]
    with db.session() as s:
        world = factories.world(s)
        agent = orgs.create_org(s, "callcenter-b", "Call Center B", "sender")
        _, agent_key = orgs.create_key(s, agent)
        delegations.grant(s, world.org_ids["acme"], "callcenter-b", ["acme-cards"], ["check"])
        gateway_key = factories.gateway(s)
        desk = accounts.create_staff(s, "finance@regulator.example", PASSWORD, "officer",
                                     "financial")  # fmt: skip
        officer = accounts.create_staff(s, "officer@regulator.example", PASSWORD, "officer")
        s.commit()
    acme_key = world.keys["acme"]
    # The agent asks for Acme's sender and is told deny; it texts anyway.
    asked = _http(live_server, agent_key, "/check",
                  {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"})  # fmt: skip
    assert asked["decision"] == "deny"
    # The holder forwards the text to the registry's number, port first, full-width digits.
    forwarded = _http(live_server, gateway_key, "/gateway/inbound-sms", {
        "from": HOLDER, "to": settings.sms_number,
        "text": "１０６９０００１ 【Acme】您的贷款额度已批，回T退订",
    })  # fmt: skip
    assert forwarded["action"] == "complaint"
    ref = forwarded["complaint"]
    assert ref in forwarded["reply"]
    # Merchant and agent each see it in their feed and their list, and answer.
    for key, role, action, found in (
        (acme_key, "merchant", "disciplined_channel", "Our agent Call Center B sent it."),
        (agent_key, "agent", "stopped_contacting", "Number removed from our campaign."),
    ):
        feed = _http(live_server, key, "/changes")["changes"]
        assert [c["complaint"]["role"] for c in feed if c["type"] == "complaint.forwarded"] == [
            role
        ]
        [item] = _http(live_server, key, "/complaints")["complaints"]
        assert item["reference"] == ref
        answer = _http(live_server, key, f"/complaints/{item['id']}/answer",
                       {"found": found, "action": action, "attachments": ["ticket:77"]})  # fmt: skip
        assert answer["late"] is False
    complaint_id = item["id"]
    # The financial desk and then the regulator reply in the console; the regulator's is final.
    _console(chromium, live_server, desk.user.email, desk.totp_secret, complaint_id,
             "The bank regulator has recorded a breach by Acme.")  # fmt: skip
    _console(chromium, live_server, officer.user.email, officer.totp_secret, complaint_id,
             "Acme and its agent were told to stop; the case is closed.", "closed")  # fmt: skip
    with db.session() as s:
        texts = s.scalars(select(SmsMessage.body).where(SmsMessage.phone == HOLDER,
                                                        SmsMessage.kind == "complaint_final")).all()  # fmt: skip
    assert len(texts) == 1
    assert ref in texts[0]
    # The holder reads every step in plain words, in English and in Chinese.
    expected = {
        "en-US": ["Received: the text you forwarded", "Forwarded to Acme", "Forwarded to Call Center B",
                  "Acme answered", "Call Center B answered", "the financial regulator replied",
                  "The regulator replied", "Closed: this is the final answer"],
        "zh-CN": ["已转交 Acme", "已转交 Call Center B", "Acme 答复", "金融监管部门答复", "监管部门答复",
                  "已结案"],
    }  # fmt: skip
    for locale, words in expected.items():
        context = chromium.new_context(
            viewport={"width": 390, "height": 844}, locale=locale, bypass_csp=True
        )  # fmt: skip (axe is injected)
        page = context.new_page()
        sign_in(page, live_server)
        page.goto(f"{live_server}/me/complaints/{complaint_id}")
        steps = page.inner_text("#steps")
        for word in words:
            assert word in steps, (locale, word, steps)
        assert not CODES.search(page.inner_text("main")), page.inner_text("main")
        assert_accessible(page)
        context.close()
