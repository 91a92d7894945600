"""Carrier disconnections: voiding, reassignment answers, the CLI import."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.consent.models import Consent
from registry.numbers.models import Disconnection
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.timeutil import utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2


@pytest.fixture
def active(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )


def consent(api: Api, captured: str, phone: str = HOLDER) -> dict:  # type: ignore[type-arg]
    resp = api.post("/consents", {"phone": phone, "sender": "acme-cards", "channels": ["sms"],
                                  "evidence": {"method": "web_form", "captured_at": captured}})  # fmt: skip
    assert resp.status_code == 201
    return resp.get_json()  # type: ignore[no-any-return]


def days_ago(n: float) -> str:
    return (utcnow() - timedelta(days=n)).isoformat()


def test_disconnection_voids_old_consent_and_new_consent_counts(
    active: None, acme: Api, carrier: Api, session: Session
) -> None:
    old = consent(acme, days_ago(30))
    sub = subscribers.set_preferences(session, HOLDER, dnd_voice=True)
    sub.updated_at = utcnow() - timedelta(
        days=20
    )  # the old holder set it, before the disconnection
    session.commit()
    resp = carrier.post(
        "/numbers/disconnections",
        {"disconnections": [{"phone": HOLDER, "disconnected_at": days_ago(1)}]},
    )
    assert resp.status_code == 202
    assert resp.get_json() == {"accepted": 1, "rejected": []}
    assert session.get(Consent, old["id"]).status == "void"  # type: ignore[union-attr]
    history = acme.get(f"/consents/{old['id']}").get_json()["history"]
    assert history[-1]["type"] == "voided"
    assert acme.check(HOLDER)["reason"] == "reassigned"
    session.expire_all()
    sub = session.get(Subscriber, HOLDER)
    assert sub is not None
    assert not sub.dnd_voice  # the next holder inherits no preferences
    consent(acme, days_ago(0.5))
    assert acme.check(HOLDER)["reason"] == "consent"


def test_optout_before_disconnection_does_not_bind_next_holder(
    active: None, acme: Api, carrier: Api
) -> None:
    acme.post("/optouts", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"], "source": "call",
                           "received_at": days_ago(10)})  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "opted_out"
    carrier.post(
        "/numbers/disconnections",
        {"disconnections": [{"phone": HOLDER, "disconnected_at": days_ago(2)}]},
    )
    assert acme.check(HOLDER)["reason"] == "no_consent"


def test_bad_rows_are_rejected_by_index(carrier: Api, session: Session) -> None:
    rows = [
        {"phone": HOLDER, "disconnected_at": "2026-03-01T00:00:00+08:00"},
        {"phone": "garbage", "disconnected_at": "2026-03-01"},
        {"phone": HOLDER2, "disconnected_at": "not a date"},
        "just text",
        {"phone": HOLDER2, "disconnected_at": "2999-01-01T00:00:00Z"},
        {"phone": HOLDER, "disconnected_at": "2026-03-01T00:00:00+08:00"},  # repeat: harmless
    ]
    body = carrier.post("/numbers/disconnections", {"disconnections": rows}).get_json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert body["rejected"][0]["error"]["code"] == "invalid_phone"
    assert len(session.scalars(select(Disconnection)).all()) == 1


def test_only_carriers_report(acme: Api) -> None:
    resp = acme.post(
        "/numbers/disconnections",
        {"disconnections": [{"phone": HOLDER, "disconnected_at": days_ago(1)}]},
    )
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"


def test_too_many_rows(carrier: Api) -> None:
    rows = [{"phone": HOLDER, "disconnected_at": "2026-03-01"}] * 10_001
    assert carrier.post("/numbers/disconnections", {"disconnections": rows}).status_code == 413


def test_reassigned_true_false_null(
    app: Flask, acme: Api, carrier: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    carrier.post(
        "/numbers/disconnections",
        {"disconnections": [{"phone": HOLDER, "disconnected_at": "2026-03-01T12:00:00+08:00"}]},
    )
    assert (
        acme.get(f"/numbers/{HOLDER}/reassigned?since=2026-02-01").get_json()["reassigned"] is True
    )
    assert (
        acme.get(f"/numbers/{HOLDER}/reassigned?since=2026-03-02").get_json()["reassigned"] is None
    )
    monkeypatch.setitem(
        app.config,
        "REGISTRY",
        replace(app.config["REGISTRY"], disconnect_data_since=date(2025, 1, 1)),
    )
    assert (
        acme.get(f"/numbers/{HOLDER}/reassigned?since=2026-03-02").get_json()["reassigned"] is False
    )
    assert (
        acme.get(f"/numbers/{HOLDER2}/reassigned?since=2024-06-01").get_json()["reassigned"] is None
    )
    assert acme.get(f"/numbers/{HOLDER}/reassigned?since=yesterday").status_code == 422
    assert (
        acme.get("/numbers/abc/reassigned?since=2026-01-01").get_json()["error"]["code"]
        == "invalid_phone"
    )


def test_cli_import_keeps_good_rows_and_reports_bad_lines(
    app: Flask, session: Session, world: object, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "disc.csv"
    path.write_text(
        "phone,disconnected_at\n"
        f"{HOLDER},2026-03-01T00:00:00+08:00\n"
        "garbage line\n"
        "12,2026-03-01\n"
        f"{HOLDER2},never\n"
        "\n"
        "139 0013 9000,2026-04-01\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(
        args=["disconnections", "import", str(path), "--carrier", "carrier"]
    )
    assert result.exit_code == 0, result.output
    assert "2 disconnections recorded, 3 rows rejected" in result.output
    for line in ("line 3", "line 4", "line 5"):
        assert line in result.output
    phones = {d.phone for d in session.scalars(select(Disconnection))}
    assert phones == {HOLDER, HOLDER2}
