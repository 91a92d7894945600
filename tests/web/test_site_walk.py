"""The citizen site as a holder sees it, in real Chromium (issue 13 §5).

Phone (390×844) and desktop (1366×900), zh-CN and English, with and without
JavaScript: controls beside their labels, words instead of codes, local times
with the zone named, error pages with the site's chrome, the language kept
across sign-in, a specific message per field, quiet hours as people write
them, the operator's footer on every page, a complaint sent twice made once,
a copied cookie refused after sign-out, and a demo that acts in nobody's name.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from registry.cli import demo
from registry.complaints.models import Complaint
from registry.consent import services as consents
from registry.events.models import Event
from registry.extensions import db
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.sms.models import SmsMessage
from registry.timeutil import utcnow
from tests import factories
from tests.conftest import needs_chromium
from tests.factories import HOLDER

pytestmark = [pytest.mark.browser, pytest.mark.live, needs_chromium]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
LANGS = {"zh": "zh-CN", "en": "en-US"}

# What a holder must never read on the site: the registry's own codes.
CODES = re.compile(
    r"\b(?:deny|allow|no_consent|not_registered|opted_out|category_blocked|no_check|"
    r"web_form|sms,voice|consent\.created|consent\.confirmed|preferences\.changed|"
    r"org:[\w-]+|contacted_despite_deny)\b|\((?:open|cli|api|site)\)|\bUTC\b"
)


@pytest.fixture
def world(app: Flask) -> factories.World:
    """Return the suite's two organizations, committed, with ShopMall's consent for the holder."""
    with db.session() as s:
        world = factories.world(s)
        shop = resolve_sender(
            s, Caller(world.org_ids["shop"], "shop", "Shop", "platform", None), "shop-deals", "consent", utcnow(),
        )  # fmt: skip
        consents.create_consent(
            s, app.config["REGISTRY"], consents.Actor("org:shop", "api", world.org_ids["shop"]), shop, HOLDER,
            ["sms", "voice"], consents.Evidence("web_form", utcnow(), "Weekly deals", "signup-77"),
            confirmed=True,
        )  # fmt: skip
        s.commit()
    return world


def open_page(browser: Any, lang: str, viewport: dict[str, int], js: bool = True) -> Any:
    """Return a new page in its own context: the language the browser asks for, JS on or off."""
    context = browser.new_context(viewport=viewport, locale=LANGS[lang], java_script_enabled=js)
    return context.new_page()


def last_code(phone: str = HOLDER) -> str:
    with db.session() as s:
        body = s.scalars(
            select(SmsMessage.body)
            .where(SmsMessage.phone == phone, SmsMessage.kind == "login_code")
            .order_by(SmsMessage.id.desc())  # type: ignore[union-attr]
        ).first()
    assert body is not None
    return re.search(r"\d{6}", body).group(0)  # type: ignore[union-attr]


def sign_in(page: Any, base: str, typed: str = "138 0013 8000", phone: str = HOLDER) -> None:
    """Sign in through the pages, by the texted code."""
    page.goto(f"{base}/sign-in")
    page.fill("#phone", typed)
    page.locator("main form button[type=submit]").click()
    page.fill("#code", last_code(phone))
    page.locator("main form button[type=submit]").click()
    assert page.url.endswith("/me"), page.url


def visible_text(page: Any) -> str:
    return str(page.locator("body").inner_text())


def box(locator: Any) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None
    return dict(found)


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    return chromium


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_each_control_sits_beside_its_label_with_a_large_target(
    browser: Any, live_server: str, world: factories.World, viewport: dict[str, int], js: bool
) -> None:
    page = open_page(browser, "zh", viewport, js)
    sign_in(page, live_server)
    controls = []
    for path in ("/me", "/me/complaints"):
        page.goto(live_server + path)
        for control in page.locator("main input[type=checkbox], main input[type=radio]").all():
            label = page.locator(f"label[for='{control.get_attribute('id')}']")
            c, lab = box(control), box(label)
            # Beside it: on the same line (centres within a few pixels), to its right, close.
            assert abs((c["y"] + c["height"] / 2) - (lab["y"] + lab["height"] / 2)) <= 4, (
                path,
                c,
                lab,
            )
            assert 0 <= lab["x"] - (c["x"] + c["width"]) <= 24, (path, c, lab)
            assert c["width"] >= 24
            assert c["height"] >= 24
            assert lab["height"] >= 40  # the label is the large target: the whole row
            controls.append(control)
    assert len(controls) == 2 + 12 + 2  # do-not-disturb, categories, channel
    # Clicking the label's far end ticks the box it sits beside.
    page.goto(live_server + "/me")
    label = page.locator("label[for='categories-1']")
    label.scroll_into_view_if_needed()  # on a phone the nav (issue 19's pages) pushes it down
    b = box(label)
    page.mouse.click(b["x"] + b["width"] - 4, b["y"] + b["height"] - 3)
    assert page.locator("#categories-1").is_checked()
    assert not page.locator("#categories-0").is_checked()
    assert not page.locator("#categories-2").is_checked()
    page.context.close()


def file_complaint(page: Any, base: str, when: str = "2026-11-20T10:15") -> None:
    page.goto(base + "/me/complaints")
    page.fill("#address", "10690001")
    page.check("#channel-0")
    page.fill("#contacted_at", when)
    page.locator("main form button[type=submit]").click()
    assert re.search(r"/me/complaints/\d+$", page.url), page.url


WORDS = {
    "zh": ["拒绝", "您从未同意过", "允许", "您同意过该发送方", "短信", "生效中", "短信、电话",
           "网站上的表单", "待处理（等待答复）", "发送方联系您之前没有查询平台", "记录了同意", "中国标准时间"],
    "en": ["refused", "you never agreed to it", "allowed", "you agreed to this sender", "text message",
           "in force", "text messages, calls", "a form on a website", "waiting for an answer",
           "the sender did not ask the registry before contacting you", "Consent recorded",
           "China Standard Time"],
}  # fmt: skip


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_holders_read_words_and_local_times_not_codes_and_utc(
    browser: Any, live_server: str, world: factories.World, lang: str
) -> None:
    from tests.web.test_browser import check

    page = open_page(browser, lang, PHONE)
    sign_in(page, live_server)
    check(live_server, world.keys["acme"])  # no_consent: refused
    check(live_server, world.keys["shop"], "shop-deals")  # consent: allowed
    file_complaint(page, live_server)  # 10:15 in Shanghai is 02:15 UTC
    complaint_page = visible_text(page)
    assert "10:15" in complaint_page
    assert "02:15" not in complaint_page
    seen = complaint_page
    for path in ("/me/checks", "/me/senders", "/me/complaints", "/me/data"):
        page.goto(live_server + path)
        text = visible_text(page)
        assert not CODES.search(text), (path, CODES.search(text))
        seen += text
    for words in WORDS[lang]:
        assert words in seen, words
    # The instant itself stays exact for machines: <time datetime> in UTC.
    page.goto(live_server + "/me/complaints")
    assert page.locator("time").first.get_attribute("datetime") == "2026-11-20T02:15:00Z"
    page.context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_error_pages_speak_the_page_language_with_the_site_around_them(
    browser: Any, live_server: str, world: factories.World, lang: str
) -> None:
    page = open_page(browser, lang, PHONE, js=False)
    response = page.goto(live_server + "/no-such-page")
    assert response.status == 404
    assert page.locator("html").get_attribute("lang") == ("zh-CN" if lang == "zh" else "en")
    assert page.locator("header.top .brand").count() == 1
    assert page.locator("footer.operator").count() == 1
    assert ("找不到这个页面" if lang == "zh" else "We cannot find that page") in visible_text(page)
    page.get_by_role("link", name=re.compile("返回首页|Back to the start")).click()
    assert page.url == live_server + "/"
    # A form that has expired (its session is gone): 400, still the site, with a way back.
    page.goto(live_server + "/sign-in")
    page.context.clear_cookies()
    page.fill("#phone", HOLDER)
    with page.expect_response(live_server + "/sign-in") as sent:
        page.locator("main form button[type=submit]").click()
    assert sent.value.status == 400
    assert page.locator("header.top .brand").count() == 1
    assert ("刷新页面" if lang == "zh" else "reload the page") in visible_text(page)
    # Another holder's complaint is simply not found, in words, once signed in.
    sign_in(page, live_server)
    response = page.goto(live_server + "/me/complaints/999999")
    assert response.status == 404
    assert page.locator("header.top nav").count() == 1  # the holder's own menu
    page.get_by_role("link", name=re.compile("返回您的设置|Back to your settings")).click()
    assert page.url.endswith("/me")
    # The API keeps its envelope.
    api = page.request.get(live_server + "/api/v1/no-such-thing")
    assert api.status == 404
    assert api.json()["error"]["code"] == "not_found"
    page.context.close()


def test_too_many_requests_and_a_database_down_are_site_pages(app: Flask, tmp_path: Any) -> None:
    from tests.conftest import make_app, other_app
    from tests.web.test_site import csrf

    with other_app(
        app.config["REGISTRY"].database_url, tmp_path, REGISTRY_RATELIMIT_LOGIN_CLIENT="1 per hour"
    ) as limited:
        client = limited.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        client.post("/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")})
        resp = client.post(
            "/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")}
        )
        page = resp.get_data(as_text=True)
        assert resp.status_code == 429
        assert 'lang="en"' in page
        assert "Too many requests" in page
        assert 'class="brand"' in page
        assert "Wait a while" in page
        assert 'href="/"' in page
    # The database is gone: asking for a code cannot be recorded. 503, the site's page.
    gone = make_app(f"sqlite:///{tmp_path / 'gone' / 'x.sqlite3'}", tmp_path)
    client = gone.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    resp = client.post("/sign-in", data={"phone": HOLDER, "csrf_token": csrf(client, "/sign-in")})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert "平台暂时无法使用" in page
    assert 'class="brand"' in page
    assert 'lang="zh-CN"' in page
    with gone.app_context():
        db.dispose()


def test_english_chosen_before_signing_in_stays_after(
    browser: Any, live_server: str, world: factories.World
) -> None:
    page = open_page(browser, "zh", PHONE, js=False)
    page.goto(live_server + "/sign-in")
    page.get_by_role("button", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    cookie_before = {c["name"]: c["value"] for c in page.context.cookies()}["anning_holder"]
    sign_in(page, live_server)
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Who may contact" in visible_text(page)
    # Still a new session (no fixation): the cookie changed at sign-in.
    assert {c["name"]: c["value"] for c in page.context.cookies()}["anning_holder"] != cookie_before
    # The code was texted in English too.
    with db.session() as s:
        body = s.scalars(select(SmsMessage.body).order_by(SmsMessage.id.desc())).first()  # type: ignore[union-attr]
    assert body is not None
    assert body.startswith("Anning sign-in code")
    page.context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_empty_field_says_what_it_needs_and_links_to_itself(
    browser: Any, live_server: str, world: factories.World, lang: str
) -> None:
    page = open_page(browser, lang, PHONE, js=False)
    sign_in(page, live_server)
    page.goto(live_server + "/me/complaints")
    page.locator("main form button[type=submit]").first.click()
    summary = page.locator(".error-summary li a")
    messages = summary.all_inner_texts()
    assert len(set(messages)) == len(messages) == 3, messages
    assert "该字段是必填字段。" not in messages
    assert "This field is required." not in messages
    for link in summary.all():
        target = link.get_attribute("href")
        assert page.locator(str(target)).count() == 1, target  # the error links somewhere real
    assert page.locator("fieldset#channel .field-error").count() == 1
    assert page.locator("#channel-0").get_attribute("aria-invalid") == "true"
    # Sign-in and the block form say their own thing too.
    page.goto(live_server + "/me/senders")
    page.locator("main form button[type=submit]").last.click()
    expected = "请输入发送方的名称或代码" if lang == "zh" else "Enter the sender's name or code"
    assert expected in visible_text(page)
    page.context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_quiet_hours_as_people_write_them(
    browser: Any, live_server: str, world: factories.World, lang: str
) -> None:
    page = open_page(browser, lang, DESKTOP, js=False)
    sign_in(page, live_server)
    page.fill("#quiet_hours", "9:00-10:00")
    page.locator("main form button[type=submit]").first.click()
    assert page.locator(".flash.ok").count() == 1
    assert page.locator("#quiet_hours").input_value() == "09:00-10:00"
    page.fill("#quiet_hours", "25:00-26:00")
    page.locator("main form button[type=submit]").first.click()
    error = page.locator(".field-error").inner_text()
    assert "25:00" in error
    assert ("0 到 23" if lang == "zh" else "0 to 23") in error
    assert "12:00-14:00" not in error  # says what is wrong, not only the shape
    # The hint says the same in both languages: these hours are refused, on top of the legal ones.
    hint = page.locator("#quiet_hours-hint").inner_text()
    assert ("除法定可呼叫时间的限制外" if lang == "zh" else "in addition to the legal") in hint
    page.context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_do_not_disturb_says_individual_consents_still_count(
    browser: Any, live_server: str, world: factories.World, lang: str
) -> None:
    from tests.web.test_browser import check

    page = open_page(browser, lang, PHONE)
    sign_in(page, live_server)
    hint = page.locator("fieldset", has=page.locator("#dnd_sms")).inner_text()
    assert (
        "单独同意过的发送方仍可联系您"
        if lang == "zh"
        else "agreed to individually can still contact you"
    ) in hint
    page.check("#dnd_sms")
    page.locator("main form button[type=submit]").first.click()
    # And it is true: the consented sender is still allowed, the other is refused for dnd.
    assert check(live_server, world.keys["shop"], "shop-deals") == "consent"
    assert check(live_server, world.keys["acme"]) == "dnd"
    page.context.close()


def test_the_operator_footer_is_on_every_site_page(
    browser: Any, live_server: str, world: factories.World
) -> None:
    page = open_page(browser, "en", PHONE, js=False)
    paths = ["/", "/sign-in", "/privacy", "/no-such-page"]
    for path in paths:
        page.goto(live_server + path)
        footer = page.locator("footer.operator")
        assert "Anning demo registry" in footer.inner_text(), path
        assert footer.get_by_role("link", name="Privacy notice").count() == 1
    page.goto(live_server + "/sign-in")
    page.fill("#phone", "138 0013 8000")
    page.locator("main form button[type=submit]").click()
    assert page.locator("footer.operator").count() == 1  # the code page
    page.fill("#code", last_code())
    page.locator("main form button[type=submit]").click()
    for path in ("/me", "/me/senders", "/me/checks", "/me/complaints", "/me/data"):
        page.goto(live_server + path)
        assert page.locator("footer.operator a[href^='mailto:']").count() == 1, path
    page.locator("footer.operator").get_by_role("link", name="Privacy notice").click()
    assert page.url.endswith("/privacy")
    assert "What is recorded" in visible_text(page)
    page.context.close()


def test_the_footer_names_the_configured_operator(app: Flask, tmp_path: Any) -> None:
    from tests.conftest import other_app

    with other_app(
        app.config["REGISTRY"].database_url, tmp_path,
        REGISTRY_OPERATOR_NAME="Example Telecom Authority", REGISTRY_OPERATOR_CONTACT="+86 10 1234 5678",
        REGISTRY_PRIVACY_URL="https://example.org/privacy",
    ) as configured:  # fmt: skip
        page = configured.test_client().get("/").get_data(as_text=True)
    assert "Example Telecom Authority" in page
    assert "+86 10 1234 5678" in page
    assert 'href="https://example.org/privacy"' in page


def test_a_complaint_sent_twice_is_made_once(
    browser: Any, live_server: str, world: factories.World
) -> None:
    page = open_page(browser, "en", PHONE, js=False)
    sign_in(page, live_server)
    page.goto(live_server + "/me/complaints")
    form = {
        name: page.locator(f"main form [name='{name}']").first.input_value()
        for name in ("csrf_token", "once")
    }
    form.update(address="10690001", channel="sms", contacted_at="2026-11-20T10:15", text="Again")
    en = {"Accept-Language": "en"}  # the page's own request API sends no language by itself
    first = page.request.post(live_server + "/me/complaints", form=form, headers=en)
    again = page.request.post(live_server + "/me/complaints", form=form, headers=en)  # a replay
    assert first.url == again.url
    assert re.search(r"/me/complaints/\d+$", again.url)
    assert "already sent" in again.text()
    page.goto(live_server + "/me/complaints")
    page.fill("#address", "10690001")
    page.check("#channel-1")
    page.fill("#contacted_at", "2026-11-21T09:00")
    page.locator("main form button[type=submit]").click()  # a new form is a new complaint
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Complaint)) == 2
    # Four sendings of one new form at the same moment: still one complaint.
    page.goto(live_server + "/me/complaints")
    form = {
        name: page.locator(f"main form [name='{name}']").first.input_value()
        for name in ("csrf_token", "once")
    }
    form.update(address="10690001", channel="voice", contacted_at="2026-11-22T09:00")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    body = urllib.parse.urlencode(form).encode()
    start = threading.Barrier(4)

    def send() -> int:
        request = urllib.request.Request(
            live_server + "/me/complaints", data=body, headers={"Cookie": cookie}
        )
        start.wait()
        with urllib.request.urlopen(request, timeout=30) as resp:
            return int(resp.status)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: send(), range(4))) == [200] * 4
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Complaint)) == 3
    page.goto(live_server + "/me/complaints/2")
    # The holder's message in the thread: once, however often it is sent.
    page.fill("#body", "Any news?")
    reply = {
        name: page.locator(f"main form [name='{name}']").last.input_value()
        for name in ("csrf_token", "once")
    }
    reply["body"] = "Any news?"
    for _ in range(2):
        page.request.post(page.url, form=reply)
    page.reload()
    assert visible_text(page).count("Any news?") == 1


def test_a_copied_cookie_opens_nothing_after_sign_out(
    browser: Any, live_server: str, world: factories.World
) -> None:
    page = open_page(browser, "en", PHONE, js=False)
    sign_in(page, live_server)
    other_device = open_page(browser, "en", DESKTOP, js=False)
    sign_in(other_device, live_server)
    copied = page.context.cookies()
    page.get_by_role("button", name="Sign out", exact=True).click()
    thief = open_page(browser, "en", PHONE, js=False)
    thief.context.add_cookies(copied)
    response = thief.goto(live_server + "/me")
    assert thief.url.endswith("/sign-in"), response.status  # refused: the session has ended
    # Signing out here ends this session only: the holder's other device stays signed in.
    other_device.goto(live_server + "/me")
    assert other_device.url.endswith("/me")
    for p in (page, other_device, thief):
        p.context.close()


def test_the_demo_makes_no_change_in_a_holders_name(
    app: Flask, browser: Any, live_server: str
) -> None:
    with db.session() as s:
        demo.fill(s, app.config["REGISTRY"], app.instance_path)
        s.commit()
        holders = [demo.DEMO_LOGIN, *demo.DEMO_HOLDERS]
        by_holder = s.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                Event.phone.in_(holders),
                Event.actor == "subscriber",  # type: ignore[attr-defined]
            )
        )
        seeded = s.scalars(select(Event.actor).where(Event.type == "preferences.changed")).all()
    assert by_holder == 0
    assert seeded
    assert set(seeded) == {"demo"}
    page = open_page(browser, "en", PHONE, js=False)
    sign_in(page, live_server, demo.DEMO_LOGIN, demo.DEMO_LOGIN)
    page.goto(live_server + "/me/data")
    text = visible_text(page)
    assert "Do-not-disturb settings changed" not in text
    assert "By you" not in text
    page.context.close()
