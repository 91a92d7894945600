"""Every console page, the public sanction register and the API docs, as Chromium renders them.

axe-core (tests/axe.py) finds 0 violations on each page at phone and desktop
size, in zh-CN and English; no page scrolls sideways at 390 px (wide tables
scroll inside a labelled region that takes the keyboard focus); the focus
ring stands out from white by at least 3:1; /favicon.ico answers. Runs the app
on 127.0.0.1 in a thread against committed data, like test_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner
from flask import Flask

from registry.admin import accounts
from registry.complaints import routing
from registry.extensions import db
from registry.orgs import delegations
from registry.sanctions import services as sanctions
from registry.senders.models import Sender
from registry.timeutil import utcnow
from tests import factories
from tests.admin.conftest import PASSWORD
from tests.admin.test_browser import _shot
from tests.axe import SIZES, contrast, focus_ring, report
from tests.conftest import needs_chromium
from tests.factories import HOLDER

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}


@dataclass
class Console:
    """The served app with an officer and one of everything the console lists."""

    base: str
    officer: str
    secret: str
    complaint_id: int


@pytest.fixture
def console(app: Flask, live_server: str) -> Console:
    """Commit organizations, a complaint, a suspension, a delegation, statistics and an officer."""
    with db.session() as s:
        world = factories.world(s)
        officer = accounts.create_staff(s, "officer@regulator.example", PASSWORD, "officer")
        # Routed (issue 16): the page shows where it went and the deadlines.
        complaint = routing.lodge(s, app.config["REGISTRY"], HOLDER, "10690001", "sms", utcnow(),
                                  "Card offer by SMS although I set do-not-disturb")  # fmt: skip
        deals = s.get(Sender, world.sender_ids["shop-deals"])
        assert deals is not None
        sanctions.suspend_sender(s, deals, "Texted holders after being told deny", 30,
                                 "officer@regulator.example", utcnow())  # fmt: skip
        delegations.grant(s, world.org_ids["acme"], "carrier", ["acme-cards"], ["check"],
                          utcnow() + timedelta(days=90))  # fmt: skip
        s.commit()
        console = Console(live_server, officer.user.email, officer.totp_secret, complaint.id or 0)
    CliRunner().invoke(app.cli, ["stats", "refresh"])
    return console


def new_page(chromium: Any, size: str, locale: str) -> Any:
    """Open a page at ``size`` whose browser asks for ``locale``; axe is injected past the CSP."""
    context = chromium.new_context(
        viewport=SIZES[size], locale=LOCALES[locale], bypass_csp=True,
        extra_http_headers={"Accept-Language": LOCALES[locale]},
    )  # fmt: skip
    return context.new_page()


def sign_in(page: Any, console: Console) -> None:
    """Sign the officer in through the console's form."""
    page.goto(f"{console.base}/admin/login")
    page.fill("#email", console.officer)
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(console.secret).now())
    page.press("#code", "Enter")
    page.wait_for_url(f"{console.base}/admin/")


def console_pages(console: Console) -> list[str]:
    """Return every page an officer reaches, error pages included."""
    return [
        "/admin/",
        "/admin/complaints",
        "/admin/complaints?status=nonsense&older_than=-3",  # the filter's form errors
        f"/admin/complaints/{console.complaint_id}",
        "/admin/complaints/new",  # issue 16: a complaint taken by telephone
        "/admin/complaints/stats",
        "/admin/sanctions",
        "/admin/orgs",
        "/admin/orgs/acme",
        "/admin/delegations",
        "/admin/delegations?state=nonsense",
        "/admin/stats",
        "/admin/stats?q=nonsense",
        "/admin/reports/quarterly",
        "/admin/audit",
        "/admin/no-such-page",  # the console's 404
        "/admin/orgs/no-such-org",
        "/admin/complaints/999999",
    ]


@pytest.fixture
def pages(chromium: Any) -> Iterator[Any]:
    """Yield a factory of browser pages, closing their contexts afterwards."""
    opened: list[Any] = []

    def make(size: str, locale: str) -> Any:
        opened.append(new_page(chromium, size, locale))
        return opened[-1]

    yield make
    for page in opened:
        page.context.close()


def forged_submit(page: Any, form: str) -> None:
    """Submit the form with a forged CSRF token, as a stale or foreign page would."""
    page.eval_on_selector(f"{form} input[name=csrf_token]", "el => { el.value = 'forged'; }")
    with page.expect_navigation() as refused:
        page.eval_on_selector(form, "f => f.requestSubmit()")
    assert refused.value.status == 400


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_every_console_page_has_no_axe_violation_and_no_sideways_scroll(
    app: Flask, console: Console, pages: Any, size: str, locale: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    page = pages(size, locale)
    page.goto(f"{console.base}/admin/login")
    problems = report(page)
    sign_in(page, console)
    for path in console_pages(console):
        page.goto(console.base + path)
        problems += report(page)
        if (path, size, locale) == ("/admin/complaints", "phone", "en"):
            _shot(page, "complaints-phone")
    # The console's 400 page: a form whose CSRF token does not hold.
    page.goto(f"{console.base}/admin/orgs")
    forged_submit(page, "form.who")
    assert "/admin/logout" in page.url
    problems += report(page)
    # The console's 429 page: too many sign-ins from one client.
    monkeypatch.setitem(
        app.config,
        "REGISTRY",
        replace(app.config["REGISTRY"], ratelimit_staff_login="1 per minute"),
    )
    status = 0
    for _ in range(3):
        page.goto(f"{console.base}/admin/login")
        page.fill("#email", console.officer)
        page.fill("#password", "not the password")
        page.fill("#code", "000000")
        with page.expect_navigation() as answer:
            page.press("#code", "Enter")
        status = answer.value.status
        if status == 429:
            break
    assert status == 429
    problems += report(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_public_pages_have_no_axe_violation_and_no_sideways_scroll(
    console: Console, pages: Any, size: str, locale: str
) -> None:
    page = pages(size, locale)
    problems = []
    for path in ("/sanctions", "/api/v1/docs"):
        page.goto(console.base + path)
        problems += report(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "selector"),
    [
        ("/admin/login", "#email"),  # a field on the white page
        ("/admin/login", ".top .lang button"),  # the language switch on the dark header
        ("/admin/complaints", ".table-wrap"),  # a scrolling region, focused to scroll it
        ("/admin/complaints", "nav a"),
        ("/sanctions", "main a"),
        ("/sign-in", "#phone"),
        ("/sign-in", ".top .lang button"),
    ],
)
def test_the_focus_ring_stands_out_by_3_to_1(
    console: Console, pages: Any, path: str, selector: str
) -> None:
    page = pages("desktop", "en")
    if path.startswith("/admin/") and path != "/admin/login":
        sign_in(page, console)
    page.goto(console.base + path)
    ring = focus_ring(page, selector)
    assert ring["focused"], selector
    assert ring["style"] != "none", ring
    assert ring["width"] >= 2, ring
    # WCAG 1.4.11: the ring against what surrounds it (white on the page, the header's colour).
    assert contrast(ring["color"], ring["background"]) >= 3, ring


def test_favicon_is_served_and_the_browser_finds_it(console: Console, pages: Any) -> None:
    page = pages("desktop", "en")
    answer = page.goto(f"{console.base}/favicon.ico")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/x-icon"
    page.goto(f"{console.base}/admin/login")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(console.base + icon).status == 200
