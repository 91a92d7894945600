"""The console in real Chromium: an officer signs in, judges a complaint, replies, suspends.

Runs the app on 127.0.0.1 in a thread (werkzeug) against committed data, and
drives Debian's Chromium through Playwright. Skipped when Chromium is absent.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy.orm import Session

from registry.admin import accounts
from registry.complaints import services as complaints
from registry.orgs import services as orgs
from registry.senders import services as senders
from registry.subscribers import services as subscribers
from tests.admin.conftest import PASSWORD, file_complaint
from tests.conftest import needs_chromium
from tests.factories import HOLDER

# Screenshots for the docs are refreshed on request (ANNING_SCREENSHOTS=1), so
# that an ordinary run leaves the working tree clean.
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[object]:
    """Return a Chromium page (desktop width)."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
    yield page
    page.close()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = DOCS_SHOTS if os.environ.get("ANNING_SCREENSHOTS") else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"admin-{name}.png"), full_page=True)


def test_officer_judges_a_complaint_replies_and_suspends_the_sender(
    app: Flask, session: Session, live_server: str, browser_page
) -> None:  # type: ignore[no-untyped-def]
    org = orgs.create_org(session, "acme", "Acme Bank")
    _, key = orgs.create_key(session, org)
    senders.create_sender(session, org.id or 0, "acme-cards", "Acme Cards", "finance", ["10690001"])
    staff = accounts.create_staff(session, "officer@regulator.example", PASSWORD, "officer")
    subscribers.set_preferences(session, HOLDER, dnd_sms=True, blocked_categories=["finance"])
    session.commit()
    api = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    check = {"phone": HOLDER, "sender": "acme-cards", "channel": "sms"}
    assert api.post("/api/v1/check", json=check, headers=auth).get_json()["decision"] == "deny"
    # The sender was told deny, texted anyway, and the holder complained on the site.
    complaint = file_complaint(
        session, HOLDER, text="Card offer by SMS although I set do-not-disturb"
    )
    CliRunner().invoke(app.cli, ["stats", "refresh"])
    page = browser_page

    page.goto(f"{live_server}/admin/")
    assert "/admin/login" in page.url
    page.fill("#email", "officer@regulator.example")
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(staff.totp_secret).now())
    _shot(page, "login")
    page.click("main button[type=submit]")  # not the language switch in the header
    page.wait_for_url(f"{live_server}/admin/")
    _shot(page, "dashboard")

    page.click("nav >> text=Complaints")
    page.wait_for_selector(f"#complaint-{complaint.id}")
    _shot(page, "complaints")
    page.click(f"#complaint-{complaint.id} a")
    assert page.inner_text("#verdict-code") == "contacted_despite_deny"
    page.fill("#body", "The sender was told not to text you and did. We have suspended it.")
    page.select_option("#then_status", "answered")
    page.click("#reply button[type=submit]")
    page.wait_for_selector("text=Reply sent")
    _shot(page, "complaint")

    page.click("text=Suspend this sender")
    page.click("#sender-acme-cards summary")
    page.fill("#reason-acme-cards", "Texted holders after being told deny")
    page.fill("#days-acme-cards", "30")
    page.click("#sender-acme-cards form.suspend-sender button")
    page.wait_for_selector("text=is suspended until")
    _shot(page, "org")

    # The holder reads the same thread the officer answered.
    session.expire_all()
    [mine] = complaints.for_phone(session, HOLDER)
    assert mine.status == "answered"
    assert [m.body for m in complaints.thread(session, mine.id or 0)] == [
        "The sender was told not to text you and did. We have suspended it."
    ]
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    # The next check for that sender answers sender_suspended.
    answer = api.post("/api/v1/check", json=check, headers=auth).get_json()
    assert (answer["decision"], answer["reason"]) == ("deny", "sender_suspended")

    page.goto(f"{live_server}/admin/stats")
    _shot(page, "stats")
    page.goto(f"{live_server}/sanctions")
    assert "Texted holders after being told deny" in page.content()
    _shot(page, "public-sanctions")
