"""Every page of the citizen site, as Chromium renders it: 0 axe-core violations, no sideways scroll.

At phone (390×844) and desktop (1366×900) size, in zh-CN and English, signed
out (front page, sign-in, code entry, error pages) and signed in (every /me
page, a complaint). The holder signs in as a person does, with the texted
code. Runs the app on 127.0.0.1 in a thread against committed data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from registry.complaints import services as complaints
from registry.extensions import db
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from tests import factories
from tests.axe import SIZES, report
from tests.conftest import needs_chromium
from tests.factories import HOLDER

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}


@pytest.fixture
def complaint_id(app: Flask, live_server: str) -> int:
    """Commit a world and a complaint by the holder, so every list has a row."""
    with db.session() as s:
        factories.world(s)
        c = complaints.file_complaint(s, HOLDER, "10690001", "sms", utcnow(), "Unwanted card offer")
        s.commit()
        return c.id or 0


@pytest.fixture
def page_at(chromium: Any) -> Iterator[Any]:
    """Yield a factory of pages at a size and language (axe is injected past the CSP)."""
    opened: list[Any] = []

    def make(size: str, locale: str) -> Any:
        context = chromium.new_context(
            viewport=SIZES[size], locale=LOCALES[locale], bypass_csp=True,
            extra_http_headers={"Accept-Language": LOCALES[locale]},
        )  # fmt: skip
        opened.append(context)
        return context.new_page()

    yield make
    for context in opened:
        context.close()


def sign_in(page: Any, base: str) -> list[str]:
    """Sign the holder in with the texted code; return what axe found on the way."""
    page.goto(f"{base}/sign-in")
    problems = report(page)
    page.fill("#phone", "138 0013 8000")
    page.press("#phone", "Enter")
    page.wait_for_url(re.compile(r".*/sign-in/code.*"))
    problems += report(page)
    with db.session() as s:
        body = s.scalars(
            select(SmsMessage.body)
            .where(SmsMessage.kind == "login_code")
            .order_by(SmsMessage.id.desc())  # type: ignore[union-attr]
        ).first()
    assert body is not None
    page.fill("#code", re.search(r"\d{6}", body).group(0))  # type: ignore[union-attr]
    page.press("#code", "Enter")
    page.wait_for_url(re.compile(r".*/me$"))
    return problems


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("size", SIZES)
def test_every_site_page_has_no_axe_violation_and_no_sideways_scroll(
    live_server: str, complaint_id: int, page_at: Any, size: str, locale: str
) -> None:
    page = page_at(size, locale)
    problems: list[str] = []
    for path in ("/", "/no-such-page", "/me/complaints/not-a-number"):
        page.goto(live_server + path)
        problems += report(page)
    # The site's 400 page: a form whose CSRF token does not hold.
    page.goto(f"{live_server}/sign-in")
    page.eval_on_selector("main form input[name=csrf_token]", "el => { el.value = 'forged'; }")
    with page.expect_navigation() as refused:
        page.eval_on_selector("main form", "f => f.requestSubmit()")
    assert refused.value.status == 400
    problems += report(page)
    problems += sign_in(page, live_server)
    for path in ("/me", "/me/senders", "/me/limits", "/me/unsubscribe", "/me/checks", "/me/complaints",
                 f"/me/complaints/{complaint_id}", "/me/data", "/me/complaints/999999",
                 "/sanctions", "/no-such-page"):  # fmt: skip
        page.goto(live_server + path)
        problems += report(page)
    assert not problems, "\n".join(problems)
