"""The citizen site refuses a complaint time at the calendar's edge with a message, not a 500."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.complaints.models import Complaint
from tests.web.test_site import csrf, holder  # noqa: F401  (the signed-in holder fixture)


@pytest.mark.parametrize("when", ["0001-01-01T00:00", "9999-12-31T23:59", "1899-12-31T23:59"])
def test_a_contact_time_at_the_calendars_edge_is_refused(
    holder: FlaskClient,  # noqa: F811
    session: Session,
    when: str,
) -> None:
    resp = holder.post("/me/complaints", data={
        "address": "10690001", "channel": "sms", "contacted_at": when, "text": "",
        "csrf_token": csrf(holder, "/me/complaints"),
    })  # fmt: skip
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "1900" in page
    assert "9000" in page
    assert session.scalar(select(func.count()).select_from(Complaint)) == 0


@pytest.mark.parametrize("n", ["2147483648", "9223372036854775806", "99999999999999999999999"])
def test_complaint_ids_beyond_the_columns_range_are_404(holder: FlaskClient, n: str) -> None:  # noqa: F811
    assert holder.get(f"/me/complaints/{n}").status_code == 404
