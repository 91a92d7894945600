"""What an officer and a visitor see when something is off: filter errors, error pages, the public register.

A wrong filter is shown as the filter form's error beside the list (not a bare
400 page); the console's 400/403/404/429 pages speak the console's language,
carry its header and lead back; /sanctions wears the site's chrome with the
language switch and a way back; /favicon.ico answers.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import refresh
from sqlalchemy.orm import Session

from tests.admin.conftest import PASSWORD, Staff, csrf, sign_in

NAV = 'aria-label="Console"'  # the console's navigation, signed in


def _get(client: FlaskClient, path: str):  # type: ignore[no-untyped-def]
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    return client.get(path)


def _client(app: Flask, language: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    return client


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/admin/complaints?older_than=abc", "older_than"),
        ("/admin/complaints?status=%3Cscript%3E", "status"),
        ("/admin/delegations?state=gone", "state"),
    ],
)
def test_a_wrong_filter_is_an_error_of_the_filter_form(
    as_viewer: FlaskClient, path: str, field: str
) -> None:
    page = _get(as_viewer, path)
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert NAV in html  # the list's own page, with the console around it
    assert 'class="error-summary"' in html
    assert f'href="#filter-{field}"' in html
    # The field says what is wrong, and is marked for screen readers.
    control = re.search(rf'<(?:input|select)[^>]*id="filter-{field}"[^>]*>', html)
    assert control, html
    assert 'aria-invalid="true"' in control.group(0)
    assert f'aria-describedby="filter-{field}-error"' in control.group(0)
    assert f'id="filter-{field}-error"' in html
    assert "<script>" not in html  # the wrong value is escaped, never markup


def test_a_wrong_quarter_is_an_error_of_the_quarter_field(as_viewer: FlaskClient) -> None:
    for path in ("/admin/stats?q=2026Q5", "/admin/reports/quarterly?q=nonsense"):
        page = _get(as_viewer, path)
        html = page.get_data(as_text=True)
        assert page.status_code == 400, path
        assert NAV in html, path
        assert 'href="#q"' in html, path
        assert 'aria-invalid="true"' in html, path
        assert "like 2026Q4" in html, path


def test_filter_errors_in_chinese(app: Flask, viewer: Staff) -> None:
    client = _client(app, "zh-CN")
    sign_in(client, viewer)
    html = _get(client, "/admin/stats?q=2026Q5").get_data(as_text=True)
    assert "例如 2026Q4" in html
    assert 'lang="zh-CN"' in html
    html = _get(client, "/admin/complaints?older_than=abc").get_data(as_text=True)
    assert "请更正筛选条件后查看队列。" in html


def test_console_404_speaks_english_with_the_console_around_it(as_viewer: FlaskClient) -> None:
    for path in ("/admin/no-such-page", "/admin/orgs/no-such-org", "/admin/complaints/0"):
        page = _get(as_viewer, path)
        html = page.get_data(as_text=True)
        assert page.status_code == 404, path
        assert 'lang="en"' in html, path
        assert NAV in html, path
        assert "There is no such page in the console." in html
        assert 'href="/admin/"' in html
        assert "Back to the dashboard" in html


def test_console_error_pages_speak_chinese(app: Flask, viewer: Staff) -> None:
    client = _client(app, "zh-CN,zh;q=0.9")
    signed_out = _get(client, "/admin/no-such-page").get_data(as_text=True)
    assert "控制台中没有这个页面。" in signed_out
    assert "返回登录页面" in signed_out
    assert 'aria-label="监管控制台"' not in signed_out  # signed out: no console navigation
    sign_in(client, viewer)
    page = _get(client, "/admin/stats?q=%00")
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'lang="zh-CN"' in html
    assert "控制台无法理解此请求。" in html
    assert "返回工作台" in html


def test_a_viewer_refused_an_officer_action_sees_the_console_page(as_viewer: FlaskClient) -> None:
    token = csrf(as_viewer, "/admin/orgs")
    refresh()
    page = as_viewer.post("/admin/orgs", data={"csrf_token": token, "slug": "x-org", "name": "X"})
    html = page.get_data(as_text=True)
    assert page.status_code == 403
    assert "This action needs the officer role." in html
    assert NAV in html


def test_an_expired_console_form_is_a_console_page(as_viewer: FlaskClient) -> None:
    refresh()
    page = as_viewer.post("/admin/logout", data={"csrf_token": "forged"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "The form expired; please try again." in html
    assert NAV in html


def test_too_many_sign_ins_is_the_console_429_page(
    app: Flask, officer: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        app.config,
        "REGISTRY",
        replace(app.config["REGISTRY"], ratelimit_staff_login="2 per minute"),
    )
    client = _client(app, "en")
    client.environ_base["REMOTE_ADDR"] = "203.0.113.29"  # a client of its own
    for expected in (401, 401, 429):
        token = csrf(client, "/admin/login")
        refresh()
        page = client.post("/admin/login", data={
            "csrf_token": token, "email": officer.email, "password": PASSWORD, "code": "000000",
        })  # fmt: skip
        assert page.status_code == expected
    html = page.get_data(as_text=True)
    assert "Too many requests in a short time." in html
    assert 'lang="en"' in html
    assert "Back to the sign-in page" in html
    assert "Retry-After" in page.headers


def test_the_public_register_wears_the_site_chrome_in_english(app: Flask, session: Session) -> None:
    client = _client(app, "en")
    page = _get(client, "/sanctions")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'lang="en"' in html
    assert "Sanctioned organizations" in html
    assert 'class="skip"' in html
    assert 'class="top"' in html
    assert 'action="/lang/zh_CN"' in html  # the language switch
    assert re.search(r'<a href="/">[^<]*Back to the start</a>', html)  # the way back
    assert "css/site.css" in html
    assert "css/admin.css" not in html


def test_the_public_register_switches_to_chinese(app: Flask, session: Session) -> None:
    client = _client(app, "en")
    token = csrf(client, "/sanctions")
    switched = client.post(
        "/lang/zh_CN", data={"csrf_token": token}, headers={"Referer": "http://localhost/sanctions"}
    )
    assert switched.status_code == 302
    assert switched.headers["Location"].endswith("/sanctions")
    html = _get(client, "/sanctions").get_data(as_text=True)
    assert 'lang="zh-CN"' in html
    assert "受处罚机构" in html
    assert "返回首页" in html
    assert 'action="/lang/en"' in html  # and back to English


def test_favicon(client: FlaskClient) -> None:
    with client.get("/favicon.ico") as icon:
        assert icon.status_code == 200
        assert icon.mimetype == "image/x-icon"
        assert icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200
        assert b"<svg" in svg.data
