"""The README's Quickstart, run exactly as written: the console script and real gunicorn
serve two visitors at once, each signs in with the demo number's texted code and
each is answered in their own language; two officers sign in to the console.

The install part of the commands is checked, not run (the suite runs inside the
venv it makes); the serve part runs as written from the top of the checkout, on
a new SQLite file and instance folder, with ``--port`` and ``--workers 2``
appended.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import needs_chromium
from tests.serving.server import ROOT, Served, quickstart, quickstart_serve, serving

DEMO_LOGIN = "+8613100000001"


def test_the_quickstart_is_two_commands_install_and_run_then_install_and_test() -> None:
    (run_spec, run), (test_spec, test) = quickstart()
    assert run_spec == "."
    assert shlex.split(run)[:2] == [".venv/bin/registry", "serve"]
    assert shlex.split(test_spec) == [".[test]"]
    assert test == ".venv/bin/pytest"


def registry(served: Served, env: dict[str, str], *args: str) -> str:
    """Run the console script beside the server, on its database; return what it printed."""
    out = subprocess.run(
        [".venv/bin/registry", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def texted_code(served: Served, env: dict[str, str]) -> str:
    """Return the newest sign-in code texted to the demo number (``registry sms outbox``)."""
    line = registry(served, env, "sms", "outbox", "--phone", DEMO_LOGIN, "--limit", "1")
    match = re.search(r"(?:code:|验证码)\s*(\d{6})", line)
    assert match, line
    return match.group(1)


def submit(page: Any, form: str = "main form[method=post]") -> int:
    """Send the page's first form in ``main``; return the status its POST was answered with."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator(form).first.locator("button[type=submit]").click()
    return int(posted.value.status)


CJK = re.compile(r"[\u4e00-\u9fff]")


def language(page: Any) -> tuple[str, bool]:
    """Return the page's ``lang`` and whether its heading is written in Chinese."""
    lang = str(page.locator("html").get_attribute("lang"))
    return lang, bool(CJK.search(page.locator("main h1").first.inner_text()))


@pytest.mark.browser
@needs_chromium
def test_the_quickstart_server_serves_two_visitors_each_signed_in_in_their_language(
    tmp_path: Path, chromium: Any
) -> None:
    argv, env, port = quickstart_serve(tmp_path)
    with serving(argv, env, port) as served:
        assert f"http://127.0.0.1:{port}/" in served.output()
        zh = chromium.new_context(locale="zh-CN").new_page()
        en = chromium.new_context(locale="en-US").new_page()
        for page in (zh, en):
            page.set_default_timeout(20_000)
            page.goto(f"{served.base}/sign-in")  # both forms handed out before either is sent
        for page in (zh, en):
            page.fill("input[name=phone]", DEMO_LOGIN)
            assert submit(page) in (302, 303)  # not 400: each visitor's CSRF token is their own
            page.wait_for_url(re.compile(r"/sign-in/code"))
            page.fill("input[name=code]", texted_code(served, env))
            assert submit(page) in (302, 303)
            page.wait_for_url(re.compile(r"/me$"))
        # Both stay signed in, and each page comes in the visitor's language,
        # whichever worker answers and whoever it answered before.
        for _ in range(4):
            for page, expected in ((zh, ("zh-CN", True)), (en, ("en", False))):
                response = page.goto(f"{served.base}/me")
                assert response.status == 200
                assert page.url.endswith("/me")
                assert language(page) == expected
        # A form posted after the sign-ins is accepted for each (no CSRF refusal).
        for page in (zh, en):
            page.goto(f"{served.base}/me")
            assert submit(page) in (200, 302, 303)

        # Two officers, one after the other, each signs in to the console.
        for email, locale in (
            ("one@regulator.example", "zh-CN"),
            ("two@regulator.example", "en-US"),
        ):
            out = registry(served, env, "admin", "create", email, "--role", "officer",
                           "--password", "correct horse battery staple")  # fmt: skip
            secret = re.search(r"TOTP secret: (\S+)", out).group(1)  # type: ignore[union-attr]
            page = chromium.new_context(locale=locale).new_page()
            page.goto(f"{served.base}/admin/login")
            page.fill("#email", email)
            page.fill("#password", "correct horse battery staple")
            page.fill("#code", pyotp.TOTP(secret).now())
            assert submit(page) in (302, 303)
            page.wait_for_url(f"{served.base}/admin/")
        assert "Traceback" not in served.output()
