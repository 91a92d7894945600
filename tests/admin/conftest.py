"""Console fixtures: staff accounts, a signed-in client, form helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from registry.admin import accounts
from registry.timeutil import utcnow

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@dataclass
class Staff:
    """A staff account as a test knows it."""

    email: str
    secret: str
    role: str

    def code(self, steps: int = 0) -> str:
        """Return the TOTP code ``steps`` time steps from now."""
        return pyotp.TOTP(self.secret).at(utcnow() + timedelta(seconds=30 * steps))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client whose browser asks for English.

    The console follows the browser's language (zh-CN when it says nothing);
    these tests read its English texts. test_language.py covers zh-CN.
    """
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def make_staff(session: Session, email: str, role: str) -> Staff:
    """Create a staff account through the service."""
    new = accounts.create_staff(session, email, PASSWORD, role)
    session.commit()
    return Staff(new.user.email, new.totp_secret, role)


@pytest.fixture
def officer(session: Session) -> Staff:
    """Return an officer account."""
    return make_staff(session, "officer@regulator.example", "officer")


@pytest.fixture
def viewer(session: Session) -> Staff:
    """Return a viewer account."""
    return make_staff(session, "viewer@regulator.example", "viewer")


def csrf(client: FlaskClient, path: str) -> str:
    """Return the CSRF token of the form on ``path``."""
    # Requests in these tests share the test's app context, hence ``g``, where
    # Flask-WTF caches the token of the first client that asked; each client
    # has its own session, so forget the cached one.
    g.pop("csrf_token", None)
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def sign_in(client: FlaskClient, staff: Staff, steps: int = 0) -> None:
    """Sign ``client`` in as ``staff``."""
    token = csrf(client, "/admin/login")
    resp = client.post(
        "/admin/login",
        data={
            "csrf_token": token,
            "email": staff.email,
            "password": PASSWORD,
            "code": staff.code(steps),
        },
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)


@pytest.fixture
def as_officer(client: FlaskClient, officer: Staff) -> Iterator[FlaskClient]:
    """Return a client signed in as an officer."""
    sign_in(client, officer)
    return client


@pytest.fixture
def as_viewer(client: FlaskClient, viewer: Staff) -> Iterator[FlaskClient]:
    """Return a client signed in as a viewer."""
    sign_in(client, viewer)
    return client


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    """POST ``data`` to ``action`` with the CSRF token from ``page``."""
    return client.post(action, data={"csrf_token": csrf(client, page), **data})


def file_complaint(  # type: ignore[no-untyped-def]
    session: Session, phone: str, address: str = "10690001", channel: str = "sms",
    contacted_at=None, text: str | None = "Unwanted card offer", filed_days_ago: float = 0,
):  # fmt: skip
    """File a complaint as the holder would on the site; optionally back-date its filing."""
    from registry.complaints import services as complaints

    c = complaints.file_complaint(session, phone, address, channel, contacted_at or utcnow(), text)
    if filed_days_ago:
        c.created_at = utcnow() - timedelta(days=filed_days_ago)
    session.commit()
    return c
