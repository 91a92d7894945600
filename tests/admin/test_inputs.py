"""No input makes the console answer 500: odd paths, queries and forms."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.admin.conftest import csrf
from tests.factories import World

ODD = [
    "\x00",
    "%00",
    "'; DROP TABLE organization; --",
    "ä" * 300,
    "9" * 40,
    "-1",
    "1e400",
    "<script>",
    "../..",
    " ",
]


@pytest.mark.usefixtures("world")
def test_odd_paths_and_queries(as_officer: FlaskClient) -> None:
    for odd in ODD:
        for path in (
            f"/admin/orgs/{odd}", f"/admin/complaints/{odd}", f"/admin/stats/{odd}.csv",
            f"/admin/complaints?status={odd}&org={odd}&sender={odd}&older_than={odd}&overdue={odd}",
            f"/admin/stats?q={odd}", f"/admin/reports/quarterly?q={odd}", f"/admin/audit?action={odd}",
            f"/admin/login?next={odd}",
        ):  # fmt: skip
            assert as_officer.get(path).status_code < 500, path


def test_odd_forms(as_officer: FlaskClient, world: World) -> None:
    token = csrf(as_officer, "/admin/orgs/acme")
    for odd in ODD:
        for action, fields in (
            ("/admin/orgs", ("slug", "name", "role")),
            ("/admin/orgs/acme/senders", ("code", "name", "category", "addresses")),
            ("/admin/orgs/acme/keys", ("name",)),
            ("/admin/orgs/acme/suspend", ("reason", "days")),
            ("/admin/senders/acme-cards/suspend", ("reason", "days")),
            (f"/admin/senders/{odd}/suspend", ("reason", "days")),
            (f"/admin/orgs/acme/keys/{odd}/revoke", ()),
        ):  # fmt: skip
            data = {"csrf_token": token, **dict.fromkeys(fields, odd)}
            assert as_officer.post(action, data=data).status_code < 500, (action, odd)


def test_odd_sign_ins(client: FlaskClient) -> None:
    for odd in ODD:
        token = csrf(client, "/admin/login")
        data = {"csrf_token": token, "email": f"{odd}@x.example", "password": odd, "code": odd}
        assert client.post("/admin/login", data=data).status_code < 500
