"""A refused call leaves nothing behind, even when its caller commits (issue 14).

Services never write and then raise: they refuse before writing, or inside a
savepoint that the refusal rolls back. The one write a refusal keeps on
purpose, a wrong code's counted try, is returned to the view (not raised),
which commits it and then answers the error: these tests show it is the only
thing kept.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from registry.access import services as access
from registry.access.models import AddressProof, Connection
from registry.consent.models import Consent, ConsentRequest
from registry.errors import Conflict, ValidationFailed
from registry.events.models import Event
from registry.senders.models import SenderAddress
from registry.sms.models import SmsMessage
from registry.subscribers import login
from registry.subscribers.models import HolderSession, LoginCode
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, World

PORT = "10690001"  # acme-cards' SMS port, claimed and not attested (tests/factories.py)
FOREIGN = "+12025550123"  # in no carrier's range: proved by a texted code


def _code(session: Session, kind: str, phone: str | None = None) -> str:
    query = select(SmsMessage.body).where(SmsMessage.kind == kind)
    if phone is not None:
        query = query.where(SmsMessage.phone == phone)
    body = session.scalars(query.order_by(SmsMessage.id.desc())).first()  # type: ignore[union-attr]
    assert body is not None
    match = re.search(r"\b(\d{6})\b", body)
    assert match
    return match.group(1)


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def _count(session: Session, model: Any, *where: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_wrong_consent_code_keeps_only_its_counted_try(acme: Api, session: Session) -> None:
    made = acme.post(
        "/consent-requests",
        {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "wording": "offers"},
    )
    assert made.status_code == 201, made.get_json()
    req_id = made.get_json()["id"]
    events = _count(session, Event, Event.phone == HOLDER)
    code = _code(session, "consent_otp")

    resp = acme.post(f"/consent-requests/{req_id}/confirm", {"code": _wrong(code)})
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "validation_error"
    session.expire_all()
    req = session.get(ConsentRequest, req_id)
    assert req is not None
    assert (req.attempts, req.consent_id) == (1, None)  # the counted try, committed
    assert _count(session, Consent, Consent.phone == HOLDER) == 0
    assert _count(session, Event, Event.phone == HOLDER) == events
    assert acme.check(HOLDER)["reason"] == "no_consent"

    # The right code afterwards still confirms: the try was all that was kept.
    assert acme.post(f"/consent-requests/{req_id}/confirm", {"code": code}).status_code == 201
    assert _count(session, Consent, Consent.phone == HOLDER) == 1


def test_a_wrong_address_code_keeps_only_its_counted_try(
    acme: Api, session: Session, app: Flask
) -> None:
    settings = app.config["REGISTRY"]
    added = acme.post("/senders/acme-cards/addresses", {"addresses": [FOREIGN]})
    assert added.status_code in (200, 201), added.get_json()
    proof = acme.post("/senders/acme-cards/address-proofs", {"address": FOREIGN})
    assert proof.status_code == 201, proof.get_json()
    proof_id = proof.get_json()["id"]
    code = _code(session, "address_proof", FOREIGN)
    path = f"/senders/acme-cards/address-proofs/{proof_id}/confirm"

    resp = acme.post(path, {"code": _wrong(code)})
    assert resp.status_code == 422
    session.expire_all()
    row = session.get(AddressProof, proof_id)
    assert row is not None
    assert (row.attempts, row.confirmed_at) == (1, None)
    address = session.scalars(select(SenderAddress).where(SenderAddress.address == FOREIGN)).one()
    assert (address.attested_at, address.attested_via) == (None, None)

    # The service returns the refusal it wrote a try for; it does not raise it.
    refused = access.confirm_proof(session, address.sender_id, settings, proof_id, _wrong(code))
    assert isinstance(refused, ValidationFailed)
    session.rollback()
    assert acme.post(path, {"code": code}).status_code == 200


def test_a_wrong_sign_in_code_keeps_only_its_counted_try(
    client: FlaskClient, session: Session, world: World, app: Flask
) -> None:
    page = client.get("/sign-in").get_data(as_text=True)
    token = re.search(r'name="(?:\w-)?csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token
    client.post("/sign-in", data={"phone": HOLDER, "csrf_token": token.group(1)})
    code = _code(session, "login_code", HOLDER)
    page = client.get(f"/sign-in/code?phone={HOLDER}").get_data(as_text=True)
    token = re.search(r'name="(?:\w-)?csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token

    form = {"phone": HOLDER, "code": _wrong(code), "csrf_token": token.group(1)}
    assert client.post("/sign-in/code", data=form).status_code == 200
    session.expire_all()
    row = session.scalars(select(LoginCode).where(LoginCode.phone == HOLDER)).one()
    assert (row.attempts, row.used_at) == (1, None)
    assert _count(session, HolderSession) == 0
    assert client.get("/me").status_code == 302  # not signed in
    refused = login.verify_code(session, app.config["REGISTRY"], HOLDER, _wrong(code))
    assert isinstance(refused, ValidationFailed)
    session.rollback()


def test_a_refused_connection_keeps_the_claims_it_would_release(
    session: Session, world: World
) -> None:
    """The race of two carriers connecting one address: the loser releases no claim."""
    claim = select(func.count()).select_from(SenderAddress).where(SenderAddress.address == PORT)
    assert session.scalar(claim) == 1  # acme-cards' unattested claim
    raced: list[bool] = []

    def another_carrier_first(sess: Session, _context: Any, _instances: Any) -> None:
        # Just before this call's connections are written, another one commits PORT.
        if not raced and any(isinstance(o, Connection) for o in sess.new):
            raced.append(True)
            sess.connection().execute(
                insert(Connection).values(
                    carrier_id=world.org_ids["carrier"], organization_id=world.org_ids["acme"],
                    kind="sms_port", address=PORT, created_by="race", created_at=utcnow(),
                )
            )  # fmt: skip

    event.listen(session, "before_flush", another_carrier_first)
    try:
        with pytest.raises(Conflict, match="at the same moment"):
            access.connect(
                session, world.org_ids["carrier"], "shop", "sms_port", [PORT], "CN", "test"
            )
    finally:
        event.remove(session, "before_flush", another_carrier_first)
    assert raced
    session.commit()  # a caller that commits after the refusal keeps nothing of it
    assert session.scalar(claim) == 1
    assert _count(session, Connection, Connection.address == PORT) == 0
