"""Issue 17 in Chromium: measures taken through the console bite on checks; the public register,
the credit list and the quarterly review pass axe at phone and desktop size, in zh-CN and English.

Runs the app on 127.0.0.1 in a thread against committed data, like test_accessibility.py.
With ANNING_SCREENSHOTS=1 the review and the register are saved to docs/screenshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import insert, update

from registry.admin import accounts
from registry.checks.models import CheckLog
from registry.complaints.models import Complaint
from registry.extensions import db
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.sanctions import measures, review
from registry.sanctions import services as sanctions
from registry.senders import services as senders
from registry.senders.models import Sender
from registry.timeutil import utcnow
from tests import factories
from tests.admin.conftest import PASSWORD, file_complaint
from tests.admin.test_browser import _shot
from tests.admin.test_reviews import last_quarter
from tests.axe import SIZES, report
from tests.conftest import needs_chromium
from tests.factories import HOLDER, HOLDER2

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}
CODES = {"acme": "91310000MA1FL0000N", "shop": "91110105MA0000000Y"}
OFFICER = "officer@regulator.example"


@dataclass
class Served:
    """The served app with its officer and keys."""

    base: str
    secret: str
    keys: dict[str, str]
    quarter: str


@pytest.fixture
def served(app: Flask, live_server: str) -> Served:
    """Commit organizations with credit codes, one of each measure and a published review."""
    label, middle = last_quarter()
    with db.session() as s:
        world = factories.world(s)
        officer = accounts.create_staff(s, OFFICER, PASSWORD, "officer")
        for slug, region in (("acme", "上海"), ("shop", "北京")):
            org = s.get(Organization, world.org_ids[slug])
            assert org is not None
            orgs.set_identity(s, org, CODES[slug], region)
        # A quarter of generated data: three more companies in three industries.
        for i, (slug, category) in enumerate((("edu", "education"), ("home", "real_estate"),
                                              ("cover", "insurance"))):  # fmt: skip
            org = orgs.create_org(s, f"{slug}-co", f"{slug.title()} Co", "sender")
            sender, _ = senders.create_sender(s, org.id or 0, f"{slug}-main", f"{slug.title()}",
                                              category, [f"1069100{i}"])  # fmt: skip
            world.sender_ids[f"{slug}-main"] = sender.id or 0
            world.org_ids[f"{slug}-co"] = org.id or 0
        checks = {"acme-cards": 400, "shop-deals": 900, "edu-main": 250, "home-main": 120,
                  "cover-main": 600}  # fmt: skip
        for code, n in checks.items():
            sender = s.get(Sender, world.sender_ids[code])
            assert sender is not None
            row = {"phone": HOLDER, "sender_id": sender.id, "organization_id": sender.organization_id,
                   "channel": "sms", "purpose": "marketing", "category": sender.category,
                   "decision": "deny", "reason": "no_consent", "at": middle}  # fmt: skip
            s.execute(insert(CheckLog), [{**row, "checked_at": middle - timedelta(days=2)}] * n)
        for address, n in (("10690001", 3), ("10690002", 2), ("10691000", 4), ("10691001", 3),
                           ("10691002", 1)):  # fmt: skip
            for k in range(n):
                file_complaint(s, HOLDER if k % 2 else HOLDER2, address=address,
                               contacted_at=middle - timedelta(days=1, minutes=k))  # fmt: skip
        s.execute(update(Complaint).values(created_at=middle))
        s.commit()
        settings = app.config["REGISTRY"]
        review.draft(s, settings, label, "Education and property lead this quarter.", OFFICER,
                     utcnow())  # fmt: skip
        review.publish(s, label, OFFICER, utcnow())
        # One of each measure, on acme and shop.
        now = utcnow()
        acme = s.get(Organization, world.org_ids["acme"])
        shop = s.get(Organization, world.org_ids["shop"])
        assert acme is not None
        assert shop is not None
        basis = measures.Basis("Texted holders who had opted out", None, OFFICER, now)
        measures.notice(s, acme, basis)
        measures.interview(s, acme, basis, now + timedelta(days=2), "Agreed to a fix")
        measures.rectification(s, acme, basis, now + timedelta(days=30))
        measures.fine(s, acme, basis, 4000, 12000)
        measures.listing(s, shop, basis, 180)
        measures.suspend_address(s, shop, basis, "10690002", 30)
        deals = s.get(Sender, world.sender_ids["shop-deals"])
        assert deals is not None
        sanctions.suspend_sender(s, deals, "Calls without checking", 30, OFFICER, now)
        s.commit()
        return Served(live_server, officer.totp_secret, world.keys, label)


@pytest.fixture
def pages(chromium: Any) -> Iterator[Any]:
    """Yield a factory of browser pages at a size and in a language."""
    opened: list[Any] = []

    def make(size: str, locale: str) -> Any:
        context = chromium.new_context(
            viewport=SIZES[size], locale=LOCALES[locale], bypass_csp=True,
            extra_http_headers={"Accept-Language": LOCALES[locale]},
        )  # fmt: skip
        opened.append(context.new_page())
        return opened[-1]

    yield make
    for page in opened:
        page.context.close()


def sign_in(page: Any, served: Served) -> None:
    """Sign the officer in through the console's form."""
    page.goto(f"{served.base}/admin/login")
    page.fill("#email", OFFICER)
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(served.secret).now())
    page.press("#code", "Enter")
    page.wait_for_url(f"{served.base}/admin/")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_public_register_and_review_pass_axe(
    served: Served, pages: Any, size: str, locale: str
) -> None:
    page = pages(size, locale)
    problems = []
    for path in ("/sanctions", "/reviews", f"/reviews/{served.quarter}"):
        answer = page.goto(served.base + path)
        assert answer.status == 200, path
        problems += report(page)
        if size == "desktop" and path != "/reviews":
            name = "review" if path.startswith("/reviews/") else "register"
            _shot(page, f"public-{name}-{locale}")
    assert not problems, "\n".join(problems)
    text = page.goto(f"{served.base}/reviews/{served.quarter}").text()
    assert CODES["acme"] in text
    page.goto(f"{served.base}/sanctions")
    assert page.locator("#credit-list").count() == 1
    assert CODES["shop"] in page.locator("main").inner_text()


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_enforcement_console_pages_pass_axe(
    served: Served, pages: Any, size: str, locale: str
) -> None:
    page = pages(size, locale)
    sign_in(page, served)
    problems = []
    for path in ("/admin/orgs/acme", "/admin/orgs/shop", "/admin/orgs", "/admin/sanctions",
                 "/admin/reviews", f"/admin/reviews/{served.quarter}", "/admin/warnings",
                 "/admin/warnings?day=nonsense", "/admin/sharing"):  # fmt: skip
        page.goto(served.base + path)
        problems += report(page)
    page.goto(f"{served.base}/admin/orgs/acme")
    page.click("#measure-form >> xpath=.. >> summary")
    page.select_option("#kind", "fine")
    page.fill("#measure-reason", "Too much")
    page.fill("#illegal_gains", "1000")
    page.fill("#amount", "3001")
    with page.expect_navigation():
        page.click("#measure-form button[type=submit]")
    assert "at most 3000 yuan" in page.locator("main").inner_text()
    problems += report(page)  # the form with its errors
    if (size, locale) == ("desktop", "en"):
        _shot(page, "org-measures")
    assert not problems, "\n".join(problems)


def test_measures_from_the_console_bite_on_checks(served: Served, pages: Any) -> None:
    page = pages("desktop", "en")
    sign_in(page, served)
    api = page.request

    def check(key: str, sender: str) -> str:
        resp = api.post(f"{served.base}/api/v1/check", headers={"Authorization": f"Bearer {key}"},
                        data={"phone": HOLDER, "sender": sender, "channel": "sms"})  # fmt: skip
        assert resp.status == 200, resp.text()
        return str(resp.json()["reason"])

    assert check(served.keys["acme"], "acme-cards") == "no_consent"
    page.goto(f"{served.base}/admin/orgs/acme")
    page.fill("#reason", "Repeated complaints")
    page.fill("#days", "7")
    with page.expect_navigation():
        page.click("text=Suspend organization")
    assert "is suspended until" in page.locator("main").inner_text()
    assert check(served.keys["acme"], "acme-cards") == "sender_suspended"
    # The listed platform may not register a sender: the API says why.
    resp = api.post(f"{served.base}/api/v1/senders",
                    headers={"Authorization": f"Bearer {served.keys['shop']}"},
                    data={"code": "shop-new", "name": "New", "category": "retail"})  # fmt: skip
    assert resp.status == 403
    assert "credit list" in resp.json()["error"]["message"]
    # Lifting early needs a reason; then checks are answered as before.
    page.fill("#lift-org-reason", "Rectified after the interview")
    with page.expect_navigation():
        page.click("text=Lift suspension")
    assert check(served.keys["acme"], "acme-cards") == "no_consent"
    page.goto(f"{served.base}/sanctions")
    assert "Rectified" not in page.locator("main").inner_text()  # the lift reason stays internal
    assert "lifted" in page.locator("main").inner_text()
