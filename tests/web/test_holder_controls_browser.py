"""The holder's controls (issue 19) in Chromium: set a cap, time a refusal, unsubscribe from all.

A person's path through the pages, in zh-CN and English, at phone and
desktop size, with axe-core run on every page in the states that matter (a
form with an error, a list with senders, a sender the cap may not limit);
and what the pages did is what the next checks answer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from registry.events import services as events
from registry.events.services import HISTORY_PAGE, SYSTEM
from registry.extensions import db
from registry.subscribers.models import Subscriber
from tests import factories
from tests.api.test_check import give_consent
from tests.axe import SIZES, report
from tests.conftest import NOON, Api, needs_chromium
from tests.factories import HOLDER
from tests.web import test_accessibility
from tests.web import test_site_walk as walk
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


@pytest.fixture
def long_record(app: Flask, live_server: str) -> int:
    """Commit more than two pages of events for HOLDER; return how many."""
    many = 2 * HISTORY_PAGE + 7
    with db.session() as s:
        factories.world(s)
        start = datetime(2030, 3, 1, 4, 0, tzinfo=UTC)
        for i in range(many):
            events.record(s, SYSTEM, HOLDER, "preferences.changed", state="set",
                          at=start + timedelta(minutes=i))  # fmt: skip
        s.commit()
    return many


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("size", SIZES)
def test_my_record_pages_in_the_browser(
    live_server: str, long_record: int, page_at: Any, size: str, locale: str
) -> None:
    """/me/data a page at a time: the newest, a middle and the oldest page, and back; axe on each."""
    page = page_at(size, locale)
    problems = sign_in(page, live_server)
    page.goto(f"{live_server}/me/data")
    problems += report(page)
    entries = page.locator("ol.timeline > li")
    assert entries.count() == HISTORY_PAGE
    assert page.locator("nav.pager a[rel=prev]").count() == 0
    newest = entries.first.locator("time").get_attribute("datetime")
    page.click("nav.pager a[rel=next]")
    page.wait_for_url(re.compile(r".*/me/data\?before=\d+$"))
    problems += report(page)  # a middle page: newer, newest and older links
    assert entries.count() == HISTORY_PAGE
    page.click("nav.pager a[rel=next]")
    page.wait_for_url(re.compile(r".*/me/data\?before=\d+$"))
    problems += report(page)
    assert entries.count() == long_record - 2 * HISTORY_PAGE
    assert page.locator("nav.pager a[rel=next]").count() == 0
    assert entries.last.locator("time").get_attribute("datetime") == "2030-03-01T04:00:00Z"
    page.click("nav.pager a[rel=prev]")
    page.wait_for_url(re.compile(r".*/me/data\?after=\d+$"))
    assert entries.count() == HISTORY_PAGE
    page.click("nav.pager a[href$='/me/data']")  # "Newest changes"
    page.wait_for_url(f"{live_server}/me/data")
    assert entries.first.locator("time").get_attribute("datetime") == newest
    assert not problems, "\n".join(problems)


def test_my_record_pages_without_javascript(
    chromium: Any, live_server: str, long_record: int
) -> None:
    """The page links are plain links: a browser with JavaScript off reaches the oldest event."""
    context = chromium.new_context(viewport=SIZES["phone"], java_script_enabled=False)
    try:
        page = context.new_page()
        walk.sign_in(page, live_server)  # no axe: it needs JavaScript
        page.goto(f"{live_server}/me/data")
        while page.locator("nav.pager a[rel=next]").count():
            page.click("nav.pager a[rel=next]")
            page.wait_for_load_state()
        last = page.locator("ol.timeline > li").last.locator("time")
        assert last.get_attribute("datetime") == "2030-03-01T04:00:00Z"
        assert page.locator("ol.timeline > li").count() == long_record - 2 * HISTORY_PAGE
    finally:
        context.close()
