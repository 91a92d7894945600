"""The holder sees what a sender claimed they replied (issue 12): on their own pages only."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World
from tests.web.test_site import sign_in


def test_a_forwarded_y_shows_on_the_holders_pages_as_a_claim(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    resp = acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "同意"})
    assert resp.get_json()["action"] == "claim_recorded"
    sign_in(client, session)
    page = client.get("/me/senders").get_data(as_text=True)
    assert "Acme-Cards" in page
    assert "“同意”" in page
    assert 'class="claim"' in page
    assert "acme" in page
    assert "claim.recorded" in client.get("/me/data").get_data(as_text=True)


def test_another_holder_does_not_see_the_claim(
    client: FlaskClient, session: Session, world: World, acme: Api
) -> None:
    acme.post("/inbound-sms", {"from": HOLDER, "to": "10690001", "text": "Y"})
    sign_in(client, session, typed=HOLDER2)
    page = client.get("/me/senders").get_data(as_text=True)
    assert 'class="claim"' not in page
    assert "Acme-Cards" not in page
    assert "claim.recorded" not in client.get("/me/data").get_data(as_text=True)
