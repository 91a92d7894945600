"""Who is calling me on the site, and the filed business in plain words on the holder's pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.complaints import services as complaints
from registry.lookup.models import LookupLog
from registry.orgs import services as orgs
from registry.senders import services as senders
from registry.timeutil import utcnow
from tests.api.test_filings import FILING
from tests.api.test_lookup import attested  # noqa: F401  (autouse: the world's ports attested)
from tests.conftest import Api, other_app
from tests.factories import HOLDER, HOLDER2, World, attest
from tests.web.test_site import csrf, last_code, sign_in


@pytest.fixture
def bluesky(client: FlaskClient, session: Session, world: World, acme: Api) -> Api:
    """Blue Sky Call Center, checking for Acme's line under a filed business."""
    senders.create_sender(
        session, world.org_ids["acme"], "acme-cc-line", "Acme Cards Line", "finance",
        ["+862160000004"],
    )  # fmt: skip
    attest(session, "acme", "+862160000004")
    org = orgs.create_org(session, "bluesky-cc", "Blue Sky Call Center", "sender",
                          kind="call_center")  # fmt: skip
    key = orgs.create_key(session, org)[1]
    session.commit()
    made = acme.post(
        "/delegations",
        {"agent": "bluesky-cc", "senders": ["acme-cc-line"], "scopes": ["check"],
         "filing": FILING},
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    return Api(client, key)


@pytest.fixture
def holder(client: FlaskClient, session: Session, world: World) -> FlaskClient:
    sign_in(client, session)
    from flask_babel import refresh

    client.post("/lang/en", data={"csrf_token": csrf(client, "/")})
    refresh()  # the test keeps one app context, where Flask-Babel caches the locale
    return client


def test_the_lookup_needs_a_signed_in_holder(client: FlaskClient, world: World) -> None:
    resp = client.get("/me/lookup?number=10690001")
    assert resp.status_code == 302
    assert "/sign-in" in resp.headers["Location"]


def test_a_holder_sees_who_answers_and_what_it_was_told_about_their_number(
    holder: FlaskClient, bluesky: Api, acme: Api
) -> None:
    bluesky.check(HOLDER, sender="acme-cc-line", channel="voice")
    acme.check(HOLDER2, sender="acme-cc-line", channel="voice")  # another holder's
    page = holder.get("/me/lookup?number=021 6000 0004").get_data(as_text=True)
    assert "+862160000004" in page
    assert "Acme Cards Line" in page
    assert "Blue Sky Call Center, calling for Acme about credit cards" in page
    assert "you never agreed to it" in page  # what it was told about THIS number
    assert page.count("<tr>") == 2  # the head and the holder's one check; never HOLDER2's
    assert HOLDER2 not in page


def test_an_unknown_number_is_not_registered(holder: FlaskClient, session: Session) -> None:
    page = holder.get("/me/lookup?number=%2B86 21 6000 9999").get_data(as_text=True)
    assert "Not registered to any sender." in page
    assert session.scalars(select(LookupLog.via)).all() == ["site"]


def test_garbage_gets_a_clear_message_and_no_log(holder: FlaskClient, session: Session) -> None:
    resp = holder.get("/me/lookup?number=hello")
    assert resp.status_code == 200
    assert "That is not a phone number or SMS port" in resp.get_data(as_text=True)
    assert holder.get("/me/lookup?number=").status_code == 200
    assert holder.get("/me/lookup?number=" + "9" * 80).status_code == 200
    assert session.scalars(select(LookupLog)).all() == []


def test_the_lookup_page_is_in_chinese_by_default(
    client: FlaskClient, session: Session, world: World
) -> None:
    sign_in(client, session)
    page = client.get("/me/lookup?number=10690001").get_data(as_text=True)
    assert "谁在给我打电话" in page
    assert "Acme-Cards" in page


def test_who_checked_my_number_names_the_chain(holder: FlaskClient, bluesky: Api) -> None:
    bluesky.check(HOLDER, sender="acme-cc-line", channel="voice")
    bluesky.check(HOLDER, sender="acme-cc-line", channel="sms")
    page = holder.get("/me/checks").get_data(as_text=True)
    assert "Blue Sky Call Center, calling for Acme about credit cards" in page
    assert "Blue Sky Call Center, texting for Acme about credit cards" in page


def test_the_complaint_page_names_the_chain(
    holder: FlaskClient, bluesky: Api, session: Session
) -> None:
    complaint = complaints.file_complaint(session, HOLDER, "+862160000004", "voice", utcnow())
    session.commit()
    page = holder.get(f"/me/complaints/{complaint.id}").get_data(as_text=True)
    assert "Blue Sky Call Center, calling for Acme about credit cards" in page


@pytest.mark.live
def test_lookups_are_limited_per_holder(app: Flask, tmp_path: Path) -> None:
    from registry.extensions import db
    from tests import factories

    with db.session() as s:
        factories.world(s)
    with other_app(
        app.config["REGISTRY"].database_url, tmp_path,
        REGISTRY_RATELIMIT_LOOKUP_HOLDER="2 per minute",
        REGISTRY_RATELIMIT_STORAGE_URL="memory://",
    ) as limited:  # fmt: skip
        client = limited.test_client()
        # Signed in step by step: a session kept open across the requests would
        # hold SQLite's writer lock that the code's verification needs.
        token = csrf(client, "/sign-in")
        assert (
            client.post("/sign-in", data={"phone": HOLDER, "csrf_token": token}).status_code == 302
        )
        with db.session() as s:
            code = last_code(s, HOLDER)
        token = csrf(client, f"/sign-in/code?phone={HOLDER}")
        entered = client.post(
            "/sign-in/code", data={"phone": HOLDER, "code": code, "csrf_token": token}
        )
        assert entered.status_code == 302
        assert client.get("/me/lookup").status_code == 200  # the empty page costs nothing
        for _ in range(2):
            assert client.get("/me/lookup?number=10690001").status_code == 200
        refused = client.get("/me/lookup?number=10690001")
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
