"""Forwarding an unwanted text to the registry's own number files a complaint."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.complaints.forwarding import parse
from registry.complaints.models import Complaint
from registry.config import Settings
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2


@pytest.mark.parametrize(
    ("text", "address", "body"),
    [
        ("10690001 【Acme】贷款额度已批，回T退订", "10690001", "【Acme】贷款额度已批,回T退订"),
        ("１０６９０００１：“【Acme】贷款额度已批”", "10690001", "【Acme】贷款额度已批"),
        ("【Acme】贷款额度已批，回T退订 10690001", "10690001", "【Acme】贷款额度已批,回T退订"),
        ("「【Acme】贷款额度已批」来自10690001", "10690001", "【Acme】贷款额度已批"),
        ('"Acme: your loan is ready" from 10690001', "10690001", "Acme: your loan is ready"),
        ("From +86 131 0000 1234: buy our flats now", "+8613100001234", "buy our flats now"),
        ("【Acme】贷款额度已批(10690001)", "10690001", "【Acme】贷款额度已批"),
    ],
)
def test_forward_formats_people_use(text: str, address: str, body: str) -> None:
    forward = parse(text)
    assert forward is not None
    assert (forward.address, forward.body) == (address, body)


@pytest.mark.parametrize("text", ["TD 10690001", "10690001 TD", "Y 4821", "全部退订", "hello"])
def test_replies_are_not_forwards(text: str) -> None:
    assert parse(text) is None


def _sms(gateway: Api, settings: Settings, text: str, phone: str = HOLDER) -> dict[str, object]:
    resp = gateway.post(
        "/gateway/inbound-sms", {"from": phone, "to": settings.sms_number, "text": text}
    )
    assert resp.status_code == 200, resp.get_json()
    out: dict[str, object] = resp.get_json()
    return out


def test_forward_files_a_complaint_routed_to_the_merchant(
    gateway: Api, acme: Api, settings: Settings, session: Session
) -> None:
    acme.check(HOLDER)
    out = _sms(gateway, settings, "10690001 【Acme】贷款额度已批，回T退订")
    assert out["action"] == "complaint"
    ref = out["complaint"]
    assert isinstance(ref, str)
    assert ref in str(out["reply"])
    complaint = session.scalar(select(Complaint).where(Complaint.phone == HOLDER))
    assert complaint is not None
    assert complaint.intake == "sms"
    assert complaint.address == "10690001"
    assert [c["reference"] for c in acme.get("/complaints").get_json()["complaints"]] == [ref]
    # The forwarded text held 退订: it is a complaint, not an opt-out by the gateway.
    assert out["sender"] is None


def test_forward_without_a_number_is_kept_and_the_holder_told(
    gateway: Api, settings: Settings, session: Session
) -> None:
    out = _sms(gateway, settings, "【某银行】贷款额度已批，点击链接领取，回T退订")
    assert out["action"] == "complaint"
    assert "10690001" in str(out["reply"])  # tells how to forward with the number
    kept = session.scalar(select(Complaint).where(Complaint.phone == HOLDER))
    assert kept is not None
    assert kept.address == ""
    assert kept.text
    assert "贷款" in kept.text
    assert kept.status == "open"  # at the regulator's desk, nothing lost


def test_the_same_text_forwarded_twice_is_linked(
    gateway: Api, acme: Api, settings: Settings
) -> None:
    acme.check(HOLDER2)
    first = _sms(gateway, settings, "10690001 【Acme】贷款额度已批", HOLDER2)
    second = _sms(gateway, settings, "10690001 【Acme】贷款额度已批", HOLDER2)
    assert first["complaint"] in str(second["reply"])
    assert len(acme.get("/complaints").get_json()["complaints"]) == 1


def test_a_sender_cannot_forward_for_a_holder(acme: Api, settings: Settings) -> None:
    resp = acme.post("/gateway/inbound-sms",
                     {"from": HOLDER, "to": settings.sms_number, "text": "10690002 spam spam"})  # fmt: skip
    assert resp.status_code == 403
