"""Only a number's carrier speaks for the number: ranges, MVNOs, retraction, the feed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.consent import derivation
from registry.consent.models import Consent
from registry.numbers import ranges
from registry.numbers.models import Disconnection
from registry.orgs import services as orgs
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.timeutil import iso, utcnow
from tests.api.test_asof import decision_at
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

TELECOM_NUMBER = "+8613300133000"  # in the other carrier's range
US_NUMBER = "+12025550123"
NOBODYS_NUMBER = "+8615000150000"  # a valid mobile in no range at all
MVNO_PREFIX = "+861380013"  # inside the carrier's +86138, and HOLDER's start


@pytest.fixture
def active(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )


def _carrier(client: FlaskClient, session: Session, slug: str, *prefixes: str) -> Api:
    org = orgs.create_org(session, slug, slug.title(), "carrier")
    _, key = orgs.create_key(session, org)
    for prefix in prefixes:
        ranges.assign(session, prefix, slug, "test")
    session.commit()
    return Api(client, key)


@pytest.fixture
def telecom(client: FlaskClient, session: Session, world: World) -> Api:
    """Another carrier, holding +86133."""
    return _carrier(client, session, "telecom", "+86133")


@pytest.fixture
def mvno(client: FlaskClient, session: Session, world: World) -> Api:
    """A carrier with no range of its own yet."""
    return _carrier(client, session, "mvno")


def report(api: Api, *phones: str, at: str | None = None) -> dict:  # type: ignore[type-arg]
    when = at or iso(utcnow() - timedelta(days=1))
    rows = [{"phone": p, "disconnected_at": when} for p in phones]
    resp = api.post("/numbers/disconnections", {"disconnections": rows})
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def codes(body: dict) -> list[tuple[int, str]]:  # type: ignore[type-arg]
    return [(r["index"], r["error"]["code"]) for r in body["rejected"]]


def test_a_carrier_is_refused_for_other_carriers_and_other_countries_numbers_row_by_row(
    carrier: Api, telecom: Api, session: Session
) -> None:
    body = report(carrier, TELECOM_NUMBER, HOLDER, US_NUMBER, NOBODYS_NUMBER, HOLDER2)
    assert body["accepted"] == 2  # the good rows of the same request are taken
    assert codes(body) == [(0, "not_your_number"), (2, "not_your_number"), (3, "not_your_number")]
    assert {d.phone for d in session.scalars(select(Disconnection))} == {HOLDER, HOLDER2}
    # The other carrier, the other way round.
    body = report(telecom, HOLDER, TELECOM_NUMBER)
    assert (body["accepted"], codes(body)) == (1, [(0, "not_your_number")])


def test_a_year_one_time_is_a_rejected_row_not_a_server_error(carrier: Api) -> None:
    rows = [
        {"phone": HOLDER, "disconnected_at": "0001-01-01T00:00:00"},
        {"phone": HOLDER, "disconnected_at": "0001-01-01T00:00:00+00:00"},
        {"phone": HOLDER, "disconnected_at": "9999-12-31T23:59:59-12:00"},
        {"phone": HOLDER2, "disconnected_at": iso(utcnow() - timedelta(hours=1))},
    ]
    resp = carrier.post("/numbers/disconnections", {"disconnections": rows})
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["accepted"] == 1
    assert codes(body) == [
        (0, "validation_error"),
        (1, "validation_error"),
        (2, "validation_error"),
    ]


def test_an_mvno_speaks_for_its_sub_range_and_the_host_no_longer_does(
    carrier: Api, mvno: Api, acme: Api
) -> None:
    assert codes(report(mvno, HOLDER)) == [(0, "not_your_number")]
    resp = carrier.post("/numbers/ranges", {"prefix": MVNO_PREFIX, "carrier": "mvno"})
    assert resp.status_code == 201, resp.get_json()
    given = resp.get_json()
    assert (given["prefix"], given["carrier"], given["host"], given["host_prefix"]) == (
        MVNO_PREFIX, "mvno", "carrier", "+86138",
    )  # fmt: skip
    # Longest prefix decides: HOLDER is the MVNO's now, HOLDER2 still the host's.
    assert report(mvno, HOLDER) == {"accepted": 1, "rejected": []}
    assert codes(report(mvno, HOLDER2)) == [(0, "not_your_number")]
    assert codes(report(carrier, HOLDER)) == [(0, "not_your_number")]
    assert report(carrier, HOLDER2)["accepted"] == 1
    listed = {r["prefix"] for r in mvno.get("/numbers/ranges").get_json()["ranges"]}
    assert listed == {MVNO_PREFIX}
    host_sees = {r["prefix"] for r in carrier.get("/numbers/ranges").get_json()["ranges"]}
    assert host_sees == {"+86138", "+86139", MVNO_PREFIX}
    # The MVNO cannot take the sub-range back for the host; the host can.
    path = f"/numbers/ranges/{given['id']}/revoke"
    assert mvno.post(path).status_code == 403
    assert acme.post(path).status_code == 403
    resp = carrier.post(path)
    assert resp.status_code == 200
    assert resp.get_json()["revoked_at"] is not None
    assert carrier.post(path).status_code == 409
    assert codes(report(mvno, HOLDER, at=iso(utcnow() - timedelta(hours=2)))) == [
        (0, "not_your_number")
    ]
    assert report(carrier, HOLDER, at=iso(utcnow() - timedelta(hours=2)))["accepted"] == 1


@pytest.mark.parametrize(
    ("prefix", "carrier_slug", "status", "code"),
    [
        ("+861330", "mvno", 403, "forbidden"),  # not inside the host's own ranges
        ("+86138", "mvno", 403, "forbidden"),  # the whole range: not a sub-range
        (MVNO_PREFIX, "carrier", 422, "validation_error"),  # to itself
        (MVNO_PREFIX, "acme", 422, "validation_error"),  # not a carrier
        (MVNO_PREFIX, "nobody", 404, "not_found"),
        ("86138001", "mvno", 422, "validation_error"),  # no +
        ("+86x38", "mvno", 422, "validation_error"),
    ],
)
def test_sub_assignment_is_refused_outside_the_rules(
    carrier: Api, mvno: Api, prefix: str, carrier_slug: str, status: int, code: str
) -> None:
    resp = carrier.post("/numbers/ranges", {"prefix": prefix, "carrier": carrier_slug})
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["error"]["code"] == code


def test_sub_ranges_of_one_host_do_not_overlap_and_only_carriers_sub_assign(
    carrier: Api, mvno: Api, acme: Api, session: Session
) -> None:
    assert carrier.post("/numbers/ranges", {"prefix": MVNO_PREFIX, "carrier": "mvno"}).status_code == 201  # fmt: skip
    _carrier(carrier.client, session, "mvno-two")
    for overlapping in (MVNO_PREFIX, MVNO_PREFIX + "8", "+86138001"):
        resp = carrier.post("/numbers/ranges", {"prefix": overlapping, "carrier": "mvno-two"})
        assert resp.status_code == 409, overlapping
    resp = acme.post("/numbers/ranges", {"prefix": "+8613800", "carrier": "mvno"})
    assert resp.status_code == 403
    assert acme.get("/numbers/ranges").status_code == 403


def _consent(api: Api, phone: str = HOLDER) -> int:
    resp = api.post("/consents", {"phone": phone, "sender": "acme-cards", "channels": ["sms"],
                                  "evidence": {"method": "web_form",
                                               "captured_at": iso(utcnow() - timedelta(days=30))}})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]  # type: ignore[no-any-return]


def test_retraction_by_the_carrier_restores_consent_and_settings(
    active: None, acme: Api, carrier: Api, session: Session
) -> None:
    consent_id = _consent(acme)
    sub = subscribers.set_preferences(session, HOLDER, dnd_voice=True)
    sub.language = "en"
    sub.updated_at = utcnow() - timedelta(days=20)  # the holder set it before
    session.commit()
    assert acme.check(HOLDER)["reason"] == "consent"
    assert acme.check(HOLDER, channel="voice")["reason"] == "dnd"
    when = iso(utcnow() - timedelta(days=1))
    assert report(carrier, HOLDER, at=when)["accepted"] == 1
    assert acme.check(HOLDER)["reason"] == "reassigned"
    assert acme.check(HOLDER, channel="voice")["reason"] == "no_consent"
    assert acme.get(f"/numbers/{HOLDER}/reassigned?since=2020-01-01").get_json()["reassigned"]

    resp = carrier.post(
        "/numbers/disconnections/retractions",
        {"phone": HOLDER, "disconnected_at": when, "reason": "wrong line in the file"},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["phone"], body["carrier"], body["restored_consents"]) == (HOLDER, "carrier", 1)
    assert body["restored_preferences"] is True
    answer = acme.check(HOLDER)
    assert (answer["decision"], answer["reason"], answer["consent_id"]) == (
        "allow", "consent", consent_id,
    )  # fmt: skip
    assert acme.check(HOLDER, channel="voice")["reason"] == "dnd"
    session.expire_all()
    sub = session.get(Subscriber, HOLDER)
    assert sub is not None
    assert (sub.dnd_voice, sub.language) == (True, "en")
    consent = acme.get(f"/consents/{consent_id}").get_json()
    assert consent["status"] == "active"
    assert [h["type"] for h in consent["history"]][-2:] == ["voided", "restored"]
    assert acme.get(f"/numbers/{HOLDER}/reassigned?since=2020-01-01").get_json()["reassigned"] is None  # fmt: skip
    # Once only.
    again = carrier.post(
        "/numbers/disconnections/retractions",
        {"phone": HOLDER, "disconnected_at": when, "reason": "again"},
    )
    assert again.status_code == 404


def test_a_pending_consent_comes_back_pending(acme: Api, carrier: Api) -> None:
    consent_id = _consent(acme)
    when = iso(utcnow() - timedelta(days=1))
    report(carrier, HOLDER, at=when)
    carrier.post("/numbers/disconnections/retractions",
                 {"phone": HOLDER, "disconnected_at": when, "reason": "typo"})  # fmt: skip
    assert acme.get(f"/consents/{consent_id}").get_json()["status"] == "pending"
    assert acme.check(HOLDER, at=iso(utcnow()))["reason"] == "consent_pending"


def test_the_holders_newer_choice_survives_a_retraction(
    active: None, acme: Api, carrier: Api, session: Session
) -> None:
    _consent(acme)
    sub = subscribers.set_preferences(session, HOLDER, dnd_voice=True)
    sub.updated_at = utcnow() - timedelta(days=20)
    session.commit()
    when = iso(utcnow() - timedelta(days=1))
    report(carrier, HOLDER, at=when)
    subscribers.set_preferences(session, HOLDER, blocked_categories=["retail"])  # since then
    session.commit()
    body = carrier.post("/numbers/disconnections/retractions",
                        {"phone": HOLDER, "disconnected_at": when, "reason": "typo"}).get_json()  # fmt: skip
    assert (body["restored_consents"], body["restored_preferences"]) == (1, False)
    session.expire_all()
    sub = session.get(Subscriber, HOLDER)
    assert sub is not None
    assert (sub.dnd_voice, sub.blocked_categories) == (False, "retail")


def test_another_carrier_cannot_retract(
    active: None, acme: Api, carrier: Api, telecom: Api, session: Session
) -> None:
    consent_id = _consent(acme)
    when = iso(utcnow() - timedelta(days=1))
    report(carrier, HOLDER, at=when)
    retraction = {"phone": HOLDER, "disconnected_at": when, "reason": "not mine but still"}
    resp = telecom.post("/numbers/disconnections/retractions", retraction)
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"
    assert acme.post("/numbers/disconnections/retractions", retraction).status_code == 403
    assert session.get(Consent, consent_id).status == "void"  # type: ignore[union-attr]
    assert acme.check(HOLDER)["reason"] == "reassigned"
    bad = {**retraction, "reason": ""}
    assert carrier.post("/numbers/disconnections/retractions", bad).status_code == 422
    year_one = {**retraction, "disconnected_at": "0001-01-01T00:00:00"}
    assert carrier.post("/numbers/disconnections/retractions", year_one).status_code == 422


def _follow(api: Api) -> list[dict]:  # type: ignore[type-arg]
    return api.get("/changes?after=0&limit=1000").get_json()["changes"]  # type: ignore[no-any-return]


def test_the_feed_names_the_carrier_and_carries_the_retraction(
    active: None, acme: Api, carrier: Api
) -> None:
    _consent(acme)
    acme.post("/watchlist", {"phones": [HOLDER]})
    when = iso(utcnow() - timedelta(days=1))
    report(carrier, HOLDER, at=when)
    carrier.post("/numbers/disconnections/retractions",
                 {"phone": HOLDER, "disconnected_at": when, "reason": "typo"})  # fmt: skip
    seen = _follow(acme)
    number = [c for c in seen if c["type"].startswith("number.")]
    assert [(c["type"], c["carrier"], c["disconnected_at"]) for c in number] == [
        ("number.disconnected", "carrier", when),
        ("number.disconnection_retracted", "carrier", when),
    ]
    assert number[1]["retracted_by"] == "carrier"
    assert number[1]["state"] == "retracted"
    consent_changes = [c["type"] for c in seen if c["type"].startswith("consent.")]
    assert consent_changes == ["consent.created", "consent.voided", "consent.restored"]


def test_openapi_documents_ranges_and_retractions(acme: Api) -> None:
    doc = acme.client.get("/api/v1/openapi.json").get_json()
    paths = doc["paths"]
    assert "post" in paths["/api/v1/numbers/disconnections/retractions"]
    assert {"get", "post"} <= set(paths["/api/v1/numbers/ranges"])
    assert "409" in paths["/api/v1/numbers/ranges/{range_id}/revoke"]["post"]["responses"]
    retract = paths["/api/v1/numbers/disconnections/retractions"]["post"]["responses"]
    assert {"200", "403", "404", "409", "422"} <= set(retract)
    change = doc["components"]["schemas"]["Change"]["properties"]
    assert {"carrier", "retracted_by"} <= set(change)


def test_a_retracted_disconnection_may_be_reported_again_and_voids_again(
    active: None, acme: Api, carrier: Api, session: Session
) -> None:
    consent_id = _consent(acme)
    when = iso(utcnow() - timedelta(days=1))
    report(carrier, HOLDER, at=when)
    carrier.post("/numbers/disconnections/retractions",
                 {"phone": HOLDER, "disconnected_at": when, "reason": "retracted too soon"})  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "consent"
    assert report(carrier, HOLDER, at=when) == {"accepted": 1, "rejected": []}
    assert acme.check(HOLDER)["reason"] == "reassigned"
    rows = session.scalars(select(Disconnection).where(Disconnection.phone == HOLDER)).all()
    assert sorted(r.retracted_at is None for r in rows) == [False, True]
    history = [h["type"] for h in acme.get(f"/consents/{consent_id}").get_json()["history"]]
    assert history == ["created", "voided", "restored", "voided"]
    # Every consent's row agrees with what its events imply.
    assert derivation.rederive(session) == []


def test_a_decision_as_of_the_past_sees_the_disconnection_until_its_retraction(
    active: None, app: Flask, acme: Api, carrier: Api, session: Session, world: World
) -> None:
    _consent(acme)
    before = utcnow()
    report(carrier, HOLDER, at=iso(before - timedelta(days=1)))
    between = utcnow()
    carrier.post("/numbers/disconnections/retractions",
                 {"phone": HOLDER, "disconnected_at": iso(before - timedelta(days=1)),
                  "reason": "typo"})  # fmt: skip
    after = utcnow()
    assert decision_at(session, app, world, before) == "consent"
    assert decision_at(session, app, world, between) == "reassigned"
    assert decision_at(session, app, world, after) == "consent"
