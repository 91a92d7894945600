"""The console in zh-CN and English: the browser's language, then the remembered choice."""

from __future__ import annotations

import csv
import io

from flask import Flask
from flask.testing import FlaskClient
from flask_babel import refresh
from sqlalchemy.orm import Session

from tests.admin.conftest import Staff, csrf, file_complaint, post_form, sign_in
from tests.factories import HOLDER


def _client(app: Flask, language: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    return client


def _text(client: FlaskClient, path: str) -> str:
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    page = client.get(path)
    assert page.status_code == 200, path
    return page.get_data(as_text=True)


def test_console_speaks_chinese_when_the_browser_asks_for_it(
    app: Flask, session: Session, officer: Staff
) -> None:
    complaint = file_complaint(session, HOLDER)
    client = _client(app, "zh-CN,zh;q=0.9,en;q=0.5")
    login = _text(client, "/admin/login")
    assert "登录监管控制台" in login
    assert "身份验证器应用中的验证码" in login  # a form label, from Python
    sign_in(client, officer)

    queue = _text(client, "/admin/complaints")
    assert '<html lang="zh-CN">' in queue
    for text in ("投诉", "筛选", "逾期未答复", "提交时间（UTC）", "待处理", "工作台", "退出登录"):
        assert text in queue, text
    assert "Filter the queue" not in queue
    assert "Complaints" not in queue

    desk = _text(client, f"/admin/complaints/{complaint.id}")
    for text in ("判定", "号码持有人", "发送答复", "答复号码持有人", "随后将状态设为", "执法人员"):
        assert text in desk, text

    stats = _text(client, "/admin/stats")
    for text in ("统计", "各类别接收意愿", "各机构查询量", "投诉答复用时", "下载 CSV", "季度报告"):
        assert text in stats, text
    assert "Willingness by category" not in stats
    # The CSV stays English whatever the page's language: programs read its headers.
    rows = list(csv.reader(io.StringIO(_text(client, "/admin/stats/willingness.csv"))))
    assert rows[0] == ["category", "blocking voice", "% voice", "blocking sms", "% sms"]

    # Flash messages from the views are translated too.
    refresh()
    done = post_form(
        client,
        f"/admin/complaints/{complaint.id}",
        f"/admin/complaints/{complaint.id}/status",
        {"status": "closed"},
    )
    assert done.status_code == 302
    assert "状态：已结案。" in _text(client, f"/admin/complaints/{complaint.id}")


def test_console_speaks_english_when_the_browser_asks_for_it(
    app: Flask, session: Session, officer: Staff
) -> None:
    complaint = file_complaint(session, HOLDER)
    client = _client(app, "en")
    sign_in(client, officer)
    queue = _text(client, "/admin/complaints")
    assert '<html lang="en">' in queue
    assert "Filter the queue" in queue
    assert "Unanswered past the deadline" in queue
    assert "投诉" not in queue
    desk = _text(client, f"/admin/complaints/{complaint.id}")
    assert "Verdict" in desk
    assert "Send reply" in desk
    stats = _text(client, "/admin/stats")
    assert "Willingness by category" in stats
    assert "Time to answer a complaint" in stats
    assert "各类别接收意愿" not in stats


def test_language_switch_is_remembered_over_the_browser(app: Flask, officer: Staff) -> None:
    client = _client(app, "zh-CN")
    sign_in(client, officer)
    assert "统计" in _text(client, "/admin/stats")
    # The switch is a plain form (no script): POST with the CSRF token, back to the page.
    token = csrf(client, "/admin/stats")
    resp = client.post("/admin/lang/en", data={"csrf_token": token, "next": "/admin/stats?q="})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/admin/stats?q=")
    page = _text(client, "/admin/stats")
    assert "Willingness by category" in page  # the remembered choice wins over Accept-Language
    assert "中文" in page  # and the switch offers the way back
    # The site and the console share the choice.
    assert 'lang="en"' in _text(client, "/")
    client.post("/admin/lang/zh_CN", data={"csrf_token": csrf(client, "/admin/")})
    assert "各类别接收意愿" in _text(client, "/admin/stats")


def test_language_switch_refuses_bad_input(app: Flask) -> None:
    client = _client(app, "zh-CN")
    # Works before signing in (the login page carries it); without the CSRF token it is refused.
    assert client.post("/admin/lang/en").status_code == 400
    assert "登录监管控制台" in _text(client, "/admin/login")
    token = csrf(client, "/admin/login")
    resp = client.post("/admin/lang/fr", data={"csrf_token": token, "next": "/admin/login"})
    assert "登录监管控制台" in _text(client, "/admin/login")
    # Only console paths are followed back.
    resp = client.post(
        "/admin/lang/en", data={"csrf_token": token, "next": "https://evil.example/"}
    )
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/admin/")
    assert "Sign in to the regulator console" in _text(client, "/admin/login")
