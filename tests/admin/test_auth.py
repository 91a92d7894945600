"""Staff accounts: argon2 passwords, TOTP, lock-out, roles, the staff cookie, the audit trail."""

from __future__ import annotations

import pyotp
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.admin.accounts import MAX_FAILURES
from registry.admin.models import StaffUser
from registry.audit.models import StaffAudit
from tests.admin.conftest import PASSWORD, Staff, csrf, sign_in


def _attempt(client: FlaskClient, email: str, password: str, code: str):  # type: ignore[no-untyped-def]
    token = csrf(client, "/admin/login")
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "email": email, "password": password, "code": code},
    )


def test_cli_creates_staff_with_argon2_hash_and_totp_uri(app: Flask, session: Session) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app.cli,
        ["admin", "create", "Chief@Regulator.example", "--role", "officer", "--password", PASSWORD],
    )
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/" in result.output
    secret = next(
        line.split(": ", 1)[1]
        for line in result.output.splitlines()
        if line.startswith("TOTP secret")
    )
    user = session.scalar(select(StaffUser).where(StaffUser.email == "chief@regulator.example"))
    assert user is not None
    assert user.role == "officer"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.totp_secret == secret
    assert pyotp.TOTP(secret).now().isdigit()


def test_cli_rejects_short_password_and_duplicates(app: Flask, officer: Staff) -> None:
    runner = CliRunner()
    short = runner.invoke(app.cli, ["admin", "create", "a@b.example", "--password", "short"])
    assert short.exit_code != 0
    assert "12 characters" in short.output
    dup = runner.invoke(app.cli, ["admin", "create", officer.email, "--password", PASSWORD])
    assert dup.exit_code != 0
    assert "exists" in dup.output


def test_console_needs_sign_in(client: FlaskClient) -> None:
    resp = client.get("/admin/stats")
    assert resp.status_code == 302
    assert "/admin/login" in resp.headers["Location"]


def test_sign_in_with_password_and_totp(client: FlaskClient, officer: Staff) -> None:
    sign_in(client, officer)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert officer.email in page.get_data(as_text=True)
    cookie = client.get_cookie("anning_staff", path="/admin")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Strict"
    # The holders' session cookie carries no staff identity.
    holder_session = client.get_cookie("session")
    assert holder_session is None or "staff" not in holder_session.value


def test_wrong_code_and_reused_code_are_refused(client: FlaskClient, officer: Staff) -> None:
    code = officer.code()  # once: a second call may fall in the next 30-second step
    wrong = "000000" if code != "000000" else "111111"
    assert _attempt(client, officer.email, PASSWORD, wrong).status_code == 401
    assert _attempt(client, officer.email, PASSWORD, code).status_code == 302
    other = client.application.test_client()
    # The same code a second time (a shoulder-surfed or phished code) is refused.
    assert _attempt(other, officer.email, PASSWORD, code).status_code == 401


def test_lock_out_after_repeated_failures(
    client: FlaskClient, officer: Staff, session: Session
) -> None:
    for _ in range(MAX_FAILURES - 1):
        assert _attempt(client, officer.email, "wrong password!", officer.code()).status_code == 401
    locked = _attempt(client, officer.email, "wrong password!", officer.code())
    assert locked.status_code == 429
    assert "locked" in locked.get_data(as_text=True)
    # Even the right password and code are refused while locked.
    right = _attempt(client, officer.email, PASSWORD, officer.code())
    assert right.status_code == 429
    assert client.get("/admin/").status_code == 302
    actions = session.scalars(select(StaffAudit.action)).all()
    assert actions.count("login.failed") == MAX_FAILURES - 1
    assert "login.locked" in actions


def test_unknown_email_gives_the_same_answer(client: FlaskClient) -> None:
    resp = _attempt(client, "nobody@regulator.example", PASSWORD, "123456")
    assert resp.status_code == 401
    assert "email, password or code is wrong" in resp.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client: FlaskClient, officer: Staff) -> None:
    resp = client.post(
        "/admin/login", data={"email": officer.email, "password": PASSWORD, "code": officer.code()}
    )
    assert resp.status_code == 400
    assert client.get_cookie("anning_staff", path="/admin") is None


def test_viewer_reads_but_cannot_act(as_viewer: FlaskClient, world) -> None:  # type: ignore[no-untyped-def]
    assert as_viewer.get("/admin/orgs/acme").status_code == 200
    token = csrf(as_viewer, "/admin/orgs")
    resp = as_viewer.post(
        "/admin/orgs/acme/suspend", data={"csrf_token": token, "reason": "spam", "days": "3"}
    )
    assert resp.status_code == 403


def test_sign_out_ends_every_session(client: FlaskClient, officer: Staff, app: Flask) -> None:
    sign_in(client, officer)
    other = app.test_client()
    sign_in(other, officer, steps=1)
    token = csrf(client, "/admin/")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302
    assert other.get("/admin/").status_code == 302


def test_forged_staff_cookie_is_ignored(client: FlaskClient) -> None:
    client.set_cookie("anning_staff", "eyJpZCI6MSwiZSI6MH0.forged", path="/admin")
    assert client.get("/admin/").status_code == 302


def test_security_headers_on_console_and_public_pages(client: FlaskClient) -> None:
    for path in ("/admin/login", "/sanctions"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_open_redirect_after_sign_in_is_refused(client: FlaskClient, officer: Staff) -> None:
    token = csrf(client, "/admin/login")
    resp = client.post(
        "/admin/login?next=https://evil.example/admin",
        data={
            "csrf_token": token,
            "email": officer.email,
            "password": PASSWORD,
            "code": officer.code(),
        },
    )
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/admin/"


def test_sign_in_is_audited(client: FlaskClient, officer: Staff, session: Session) -> None:
    sign_in(client, officer)
    entry = session.scalar(select(StaffAudit).where(StaffAudit.action == "login"))
    assert entry is not None
    assert entry.actor == officer.email
    assert entry.ip == "127.0.0.1"
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "login" in page


def test_cli_prompts_for_the_password(app: Flask, session: Session) -> None:
    result = CliRunner().invoke(
        app.cli, ["admin", "create", "desk@regulator.example"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "created viewer desk@regulator.example" in result.output
    listed = CliRunner().invoke(app.cli, ["admin", "list"])
    assert "desk@regulator.example\tviewer" in listed.output


def test_cli_unlocks_a_locked_account(app: Flask, client: FlaskClient, officer: Staff) -> None:
    for _ in range(MAX_FAILURES):
        _attempt(client, officer.email, "wrong password!", officer.code())
    assert "locked" in CliRunner().invoke(app.cli, ["admin", "list"]).output
    assert CliRunner().invoke(app.cli, ["admin", "unlock", officer.email]).exit_code == 0
    sign_in(client, officer)
