"""The console's redirect target and CSV exports: no header splitting, no formulas."""

from __future__ import annotations

import csv
import io
from urllib.parse import unquote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.admin import statistics
from registry.orgs import services as orgs
from registry.orgs.models import Delegation
from tests.admin.conftest import PASSWORD, Staff, csrf, post_form
from tests.factories import World

NEXTS = [
    "/admin/%0d%0aSet-Cookie:%20anning_staff=x",
    "/admin/x%0aLocation:%20https://evil.example",
    "/admin\\\\evil.example",
    "/admin/%09x",
    "//evil.example/admin",
    "https://evil.example/admin",
]


@pytest.mark.parametrize("target", NEXTS)
def test_a_next_with_crlf_or_elsewhere_goes_to_the_dashboard(
    client: FlaskClient, officer: Staff, target: str
) -> None:
    page = client.get(f"/admin/login?next={target}")
    assert page.status_code == 200
    token = csrf(client, f"/admin/login?next={target}")
    form = {
        "csrf_token": token,
        "email": officer.email,
        "password": PASSWORD,
        "code": officer.code(),
    }
    resp = client.post(f"/admin/login?next={target}", data=form)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/admin/"
    assert all("anning_staff=x" not in value for value in resp.headers.getlist("Set-Cookie"))
    lang = client.post("/admin/lang/en", data={"csrf_token": csrf(client, "/admin/"), "next": unquote(target)})  # fmt: skip
    assert lang.status_code == 302
    assert lang.headers["Location"] == "/admin/"


def test_a_console_path_is_still_followed(client: FlaskClient, officer: Staff) -> None:
    token = csrf(client, "/admin/login")
    form = {
        "csrf_token": token,
        "email": officer.email,
        "password": PASSWORD,
        "code": officer.code(),
    }
    resp = client.post("/admin/login?next=/admin/stats%3Fq%3D2026Q1", data=form)
    assert resp.headers["Location"] == "/admin/stats?q=2026Q1"


def test_csv_exports_defuse_formulas(
    as_viewer: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Organization slugs and sender codes cannot start with a formula character
    # today, so no stored record can show this; the export is given one dataset
    # whose labels do, as an organization's name or a future field might.
    def hostile(session, period):  # type: ignore[no-untyped-def]
        return statistics.Dataset(
            "hostile", "Hostile", ["name", "count"],
            [["=HYPERLINK(\"http://evil.example\")", 1], ["+1+1", -2], ["@SUM(A1)", 3],
             ["-2+3", 4], ["\tx", 5], ["\rx", 6], ["plain", 7]],
        )  # fmt: skip

    monkeypatch.setitem(statistics.DATASETS, "hostile", hostile)
    resp = as_viewer.get("/admin/stats/hostile.csv")
    assert resp.status_code == 200
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert [r[0] for r in rows[1:]] == [
        "'=HYPERLINK(\"http://evil.example\")", "'+1+1", "'@SUM(A1)", "'-2+3", "'\tx", "'\rx", "plain",
    ]  # fmt: skip
    assert rows[2][1] == "-2"  # numbers stay numbers


@pytest.mark.parametrize("when", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_a_delegation_expiring_at_the_calendars_edge_is_refused(
    as_officer: FlaskClient, session: Session, world: World, when: str
) -> None:
    orgs.create_org(session, "callcenter-b", "Call center B", "sender")
    session.commit()
    form = {"principal": "acme", "agent": "callcenter-b", "senders": "acme-cards",
            "scopes": ["check"], "expires_at": when}  # fmt: skip
    resp = post_form(as_officer, "/admin/delegations", "/admin/delegations", form)  # type: ignore[arg-type]
    assert resp.status_code < 500
    assert "1900" in resp.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Delegation)) == 0


@pytest.mark.parametrize("n", ["2147483648", "9223372036854775806", "99999999999999999999999"])
def test_ids_beyond_the_columns_range_are_404(as_officer: FlaskClient, n: str) -> None:
    assert as_officer.get(f"/admin/complaints/{n}").status_code == 404
