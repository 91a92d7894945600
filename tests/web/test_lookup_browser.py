"""Who is calling me in Chromium: a holder types a number as a person does; 0 axe violations.

At phone and desktop size, in zh-CN and English: the empty page, an answer
with the filed business and the holder's own check, an unregistered number,
and a number that is not one.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from registry.extensions import db
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.orgs.filings import Filing
from registry.senders import services as senders
from tests import factories
from tests.axe import SIZES, report
from tests.conftest import Api, needs_chromium
from tests.factories import HOLDER
from tests.web.test_accessibility import LOCALES, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

WORDS = {
    "en": (
        "Blue Sky Call Center, calling for Acme about credit cards",
        "Not registered to any sender.",
    ),
    "zh-CN": ("Blue Sky Call Center受Acme委托，就“credit cards”来电", "该号码未登记给任何发送方。"),
}


@pytest.fixture
def filed(app: Flask, live_server: str) -> None:
    """Commit Acme's line, Blue Sky's filed business for it, and one check of the holder by Blue Sky."""
    with db.session() as s:
        world = factories.world(s)
        senders.create_sender(s, world.org_ids["acme"], "acme-cc-line", "Acme Cards Line",
                              "finance", ["+862160000004"])  # fmt: skip
        factories.attest(s, "acme", "+862160000004")
        agent = orgs.create_org(s, "bluesky-cc", "Blue Sky Call Center", "sender",
                                kind="call_center")  # fmt: skip
        key = orgs.create_key(s, agent)[1]
        delegations.grant(
            s, world.org_ids["acme"], "bluesky-cc", ["acme-cc-line"], ["check"], None,
            Filing("credit cards", "marketing", ["+862160000004"], "card holders",
                   "card upgrades", "Wang Li", "+8613100001234"),
        )  # fmt: skip
        s.commit()
    answer = Api(app.test_client(), key).check(HOLDER, sender="acme-cc-line", channel="voice")
    assert answer["reason"] == "no_consent"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_a_holder_looks_up_a_number_and_every_state_is_accessible(
    live_server: str,
    filed: None,
    chromium: Any,
    size: str,
    locale: str,
) -> None:
    context = chromium.new_context(
        viewport=SIZES[size], locale=LOCALES[locale], bypass_csp=True,
        extra_http_headers={"Accept-Language": LOCALES[locale]},
    )  # fmt: skip
    try:
        _walk(context.new_page(), live_server, locale)
    finally:
        context.close()


def _walk(page: Any, live_server: str, locale: str) -> None:
    problems = sign_in(page, live_server)
    page.click("nav a[href='/me/lookup']")
    page.wait_for_url("**/me/lookup")
    problems += report(page)
    chain, unknown = WORDS[locale]
    page.fill("#number", "021 6000 0004")
    page.press("#number", "Enter")
    page.wait_for_url("**/me/lookup?number=*")
    text = page.inner_text("main")
    assert chain in text
    assert "+862160000004" in text
    assert page.locator("main table tbody tr").count() == 1  # the holder's own check
    problems += report(page)
    page.fill("#number", "+86 21 6000 9999")
    page.press("#number", "Enter")
    page.wait_for_selector("text=" + unknown)
    problems += report(page)
    page.fill("#number", "not a number")
    page.press("#number", "Enter")
    page.wait_for_selector(".error-summary")
    problems += report(page)
    assert not problems, "\n".join(problems)
