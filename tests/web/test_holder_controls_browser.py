"""The holder's controls (issue 19) in Chromium: set a cap, time a refusal, unsubscribe from all.

A person's path through the pages, in zh-CN and English, at phone and
desktop size, with axe-core run on every page in the states that matter (a
form with an error, a list with senders, a sender the cap may not limit);
and what the pages did is what the next checks answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from registry.extensions import db
from registry.subscribers.models import Subscriber
from tests import factories
from tests.api.test_check import give_consent
from tests.axe import SIZES, report
from tests.conftest import NOON, Api, needs_chromium
from tests.factories import HOLDER
from tests.web import test_accessibility
from tests.web.test_accessibility import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]
page_at = test_accessibility.page_at  # the pages at a size and language, axe past the CSP


@pytest.fixture
def keys(app: Flask, live_server: str) -> dict[str, str]:
    """Commit a world where both senders hold the holder's consent and were allowed once."""
    with db.session() as s:
        world = factories.world(s)
        give_consent(s, world)
        give_consent(s, world, code="shop-deals")
    client: FlaskClient = app.test_client()
    for key, code in ((world.keys["acme"], "acme-cards"), (world.keys["shop"], "shop-deals")):
        Api(client, key).check(HOLDER, sender=code, at=NOON)
    return world.keys


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("size", SIZES)
def test_cap_timed_block_and_one_tap_unsubscribe_in_the_browser(
    app: Flask,
    live_server: str,
    keys: dict[str, str],
    page_at: Any,
    size: str,
    locale: str,
) -> None:
    page = page_at(size, locale)
    problems = sign_in(page, live_server)
    acme = Api(app.test_client(), keys["acme"])

    # The cap: a wrong number first (the error summary and field error), then 1 a day.
    page.goto(f"{live_server}/me/limits")
    problems += report(page)
    page.fill("#sms_per_day", "0")
    page.click("main form button[type=submit]")
    assert page.locator(".error-summary").is_visible()
    problems += report(page)
    page.fill("#sms_per_day", "1")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_server}/me/limits")
    assert page.input_value("#sms_per_day") == "1"
    with db.session() as s:
        holder = s.get(Subscriber, HOLDER)
        assert holder is not None
        assert holder.frequency_caps == "sms=1/"
    # The fixture's two allows at NOON were before the cap: this day is counted from now.
    assert acme.check(HOLDER, at="2030-02-05T12:00:00+08:00")["decision"] == "allow"
    assert acme.check(HOLDER, at="2030-02-05T13:00:00+08:00")["reason"] == "frequency_capped"

    # The Senders page offers "may always reach me" once a cap is set; a timed block.
    page.goto(f"{live_server}/me/senders")
    problems += report(page)
    page.select_option("#b-duration", "3m")
    page.fill("#b-query", "shop-deals")
    page.click("form:has(#b-query) button[type=submit]")
    page.wait_for_url(f"{live_server}/me/senders")
    problems += report(page)
    shop = Api(app.test_client(), keys["shop"])
    # Tomorrow noon in Shanghai: inside the 3 months the block lasts.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai"))
    soon = tomorrow.replace(hour=12, minute=0, second=0, microsecond=0).isoformat()
    assert shop.check(HOLDER, sender="shop-deals", at=soon)["reason"] == "opted_out"

    # Do not disturb for a year.
    page.goto(f"{live_server}/me")
    page.check("#dnd_voice")
    page.select_option("#dnd_voice_for", "1y")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_server}/me")
    problems += report(page)

    # One-tap unsubscribe: both senders listed; "all" stops the one still allowed.
    page.goto(f"{live_server}/me/unsubscribe")
    problems += report(page)
    assert page.locator("main li.card").count() == 2
    page.click("form:has(input[name=everyone]) button")
    page.wait_for_url(f"{live_server}/me/unsubscribe")
    problems += report(page)
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="voice")["reason"] == "opted_out"
    assert not problems, "\n".join(problems)
