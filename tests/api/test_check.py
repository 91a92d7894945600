"""POST /check, /check/batch and /receipts through the whole app."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from registry.checks import checklog
from registry.checks.models import CheckLog
from registry.consent import optouts
from registry.consent import services as consents
from registry.numbers.models import Disconnection
from registry.orgs.services import Caller
from registry.senders.services import resolve_sender
from registry.subscribers import services as subscribers
from registry.timeutil import utcnow
from tests.conftest import NOON, Api
from tests.factories import HOLDER, HOLDER2, World, ago, attest


def dated(session: Session, consent_id: int, when: datetime) -> None:
    """Give a consent one time for its evidence, creation and activation (naive UTC)."""
    session.execute(
        text(
            "UPDATE consent SET evidence_captured_at = :t, created_at = :t, "
            "activated_at = :t WHERE id = :id"
        ),
        {"t": when, "id": consent_id},
    )


def give_consent(
    session: Session,
    world: World,
    phone: str = HOLDER,
    *,
    code: str = "acme-cards",
    channels: tuple[str, ...] = ("sms", "voice"),
    confirmed: bool = True,
    **kw,
):  # type: ignore[no-untyped-def]
    """Record a consent through the service, as the sender's organization."""
    slug = "acme" if code == "acme-cards" else "shop"
    org_id = world.org_ids[slug]
    sender = resolve_sender(
        session, Caller(org_id, slug, slug, "sender", None), code, "consent", utcnow()
    )
    evidence = consents.Evidence("web_form", kw.pop("captured_at", ago(days=1)), "I agree", "ref-1")
    consent, _ = consents.create_consent(
        session,
        _settings(),
        consents.Actor(f"org:{slug}", "api", org_id),
        sender,
        phone,
        list(channels),
        evidence,
        confirmed=confirmed,
        **kw,
    )
    session.commit()
    return consent


def _settings():  # type: ignore[no-untyped-def]
    from flask import current_app

    return current_app.config["REGISTRY"]


def test_no_record_is_no_consent(acme: Api) -> None:
    answer = acme.check("138 0013 8000")
    assert answer["decision"] == "deny"
    assert answer["reason"] == "no_consent"
    assert answer["phone"] == HOLDER
    assert answer["category"] == "finance"


def test_consent_allows_and_names_it(acme: Api, session: Session, world: World) -> None:
    consent = give_consent(session, world)
    answer = acme.check(HOLDER)
    assert (answer["decision"], answer["reason"], answer["consent_id"]) == (
        "allow",
        "consent",
        consent.id,
    )


def test_service_purpose_is_never_blocked_by_preferences(acme: Api, session: Session) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True, blocked_categories=["finance"])
    session.commit()
    answer = acme.check(HOLDER, purpose="service")
    assert (answer["decision"], answer["reason"]) == ("allow", "not_marketing")


def test_dnd_and_category_block(acme: Api, session: Session) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True)
    subscribers.set_preferences(session, HOLDER2, blocked_categories=["finance"])
    session.commit()
    assert acme.check(HOLDER)["reason"] == "dnd"
    assert acme.check(HOLDER, channel="voice")["reason"] == "no_consent"
    assert acme.check(HOLDER2)["reason"] == "category_blocked"
    assert acme.check(HOLDER2, category="retail")["reason"] == "no_consent"


def test_consent_beats_dnd_but_later_optout_beats_consent(
    acme: Api, session: Session, world: World
) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True)
    give_consent(session, world)
    assert acme.check(HOLDER)["reason"] == "consent"
    sender = resolve_sender(
        session,
        Caller(world.org_ids["acme"], "acme", "", "sender", None),
        "acme-cards",
        "optout",
        utcnow(),
    )
    optouts.record_optout(
        session,
        consents.Actor("org:acme", "api", world.org_ids["acme"]),
        sender,
        HOLDER,
        ["sms"],
        "call",
    )
    session.commit()
    assert acme.check(HOLDER)["reason"] == "opted_out"
    assert acme.check(HOLDER, channel="voice")["reason"] == "consent"


def test_pending_consent(acme: Api, session: Session, world: World) -> None:
    give_consent(session, world, confirmed=False)
    assert acme.check(HOLDER, at=utcnow().isoformat())["reason"] == "consent_pending"
    # Unconfirmed for longer than the pending period, it no longer holds anything up.
    assert acme.check(HOLDER, at=NOON)["reason"] == "no_consent"


def test_disconnection_makes_old_consent_reassigned(
    acme: Api, session: Session, world: World
) -> None:
    give_consent(session, world, captured_at=ago(days=10))
    session.add(Disconnection(phone=HOLDER, disconnected_at=ago(days=2)))
    session.commit()
    assert acme.check(HOLDER, at=utcnow().isoformat())["reason"] in ("reassigned", "quiet_hours")
    assert acme.check(HOLDER)["reason"] == "reassigned"


def test_quiet_hours_gives_next_allowed_at(acme: Api, session: Session, world: World) -> None:
    give_consent(session, world)
    answer = acme.check(HOLDER, at="2030-01-15T22:30:00+08:00")
    assert (answer["decision"], answer["reason"]) == ("deny", "quiet_hours")
    assert answer["next_allowed_at"] == "2030-01-16T00:00:00Z"  # 08:00 in Shanghai
    subscribers.set_preferences(session, HOLDER, quiet_hours="12:00-14:00")
    session.commit()
    answer = acme.check(HOLDER, at="2030-01-15T12:30:00+08:00")
    assert answer["reason"] == "quiet_hours"
    assert answer["next_allowed_at"] == "2030-01-15T06:00:00Z"


def test_suspended_sender(acme: Api, session: Session, world: World) -> None:
    from registry.senders.models import Sender

    sender = session.get(Sender, world.sender_ids["acme-cards"])
    assert sender is not None
    sender.suspended_until = utcnow() + timedelta(days=3)
    session.commit()
    assert acme.check(HOLDER, purpose="service")["reason"] == "sender_suspended"


def test_opt_out_policy_allows_unregistered(
    app, acme: Api, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(app.config, "REGISTRY", replace(app.config["REGISTRY"], policy="opt-out"))
    answer = acme.check(HOLDER)
    assert (answer["decision"], answer["reason"]) == ("allow", "not_registered")
    assert acme.check(HOLDER, at="2030-01-15T23:00:00+08:00")["reason"] == "quiet_hours"


def test_every_check_is_logged(acme: Api, session: Session) -> None:
    acme.check(HOLDER)
    acme.check(HOLDER2, channel="voice")
    assert session.scalar(select(func.count()).select_from(CheckLog)) == 2


def test_receipt_round_trip_and_forgery(acme: Api) -> None:
    answer = acme.check(HOLDER)
    receipt = acme.get(f"/receipts/{answer['check_id']}")
    assert receipt.status_code == 200
    body = receipt.get_json()
    assert (body["phone"], body["decision"], body["reason"]) == (HOLDER, "deny", "no_consent")
    forged = answer["check_id"].replace("no_consent", "consent")
    tampered = answer["check_id"][:-3] + (
        "AAA" if not answer["check_id"].endswith("AAA") else "BBB"
    )
    for bad in (forged + "x", tampered, "garbage"):
        resp = acme.get(f"/receipts/{bad}")
        assert resp.status_code == 422
        assert resp.get_json()["error"]["code"] == "validation_error"


def test_batch_keeps_input_order_and_survives_invalid_numbers(
    acme: Api, session: Session, world: World
) -> None:
    give_consent(session, world, HOLDER2)
    resp = acme.post(
        "/check/batch",
        {
            "sender": "acme-cards",
            "channel": "sms",
            "at": NOON,
            "phones": [HOLDER, "not a number", "139-0013-9000", 42],
        },
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["input"] for r in body["results"]] == [HOLDER, "not a number", "139-0013-9000", 42]
    assert body["results"][0]["reason"] == "no_consent"
    assert body["results"][1]["error"]["code"] == "invalid_phone"
    assert body["results"][2]["decision"] == "allow"
    assert body["summary"] == {"allow": 1, "deny": 1, "invalid": 2}
    receipt = acme.get(f"/receipts/{body['check_id']}").get_json()
    assert {r["phone"] for r in receipt["results"]} == {HOLDER, HOLDER2}


def test_batch_of_10001_is_too_large(acme: Api) -> None:
    phones = [f"+86138{i:08d}" for i in range(10_001)]
    resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": phones})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "too_large"


def test_batch_of_10000_answers(acme: Api) -> None:
    phones = [f"+86138{i:08d}" for i in range(10_000)]
    resp = acme.post("/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": phones})
    assert resp.status_code == 200
    assert resp.get_json()["summary"]["deny"] == 10_000


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ('{"phone": "+8613800138000", "sender": "acme-cards"', 400, "bad_request"),
        ("[1, 2]", 422, "validation_error"),
        ('"text"', 422, "validation_error"),
        ("", 400, "bad_request"),
        (
            '{"phone": 13800138000, "sender": "acme-cards", "channel": "sms"}',
            422,
            "validation_error",
        ),
        (
            '{"phone": "+8613800138000", "sender": "acme-cards", "channel": "fax"}',
            422,
            "validation_error",
        ),
        (
            '{"phone": "+8613800138000", "sender": "acme-cards", "channel": "sms", "x": 1}',
            422,
            "validation_error",
        ),
        ('{"phone": "12345", "sender": "acme-cards", "channel": "sms"}', 422, "invalid_phone"),
        (
            '{"phone": "+8613800138000", "sender": "nobody", "channel": "sms"}',
            422,
            "unknown_sender",
        ),
        ('{"phone": "+8613800138000", "sender": "shop-deals", "channel": "sms"}', 403, "forbidden"),
        (
            '{"phone": "+8613800138000", "sender": "acme-cards", "channel": "sms", "at": "yesterday"}',
            422,
            "validation_error",
        ),
        ('{"phone": "\\u0000", "sender": "acme-cards", "channel": "sms"}', 422, "validation_error"),
    ],
)
def test_bad_input_gets_the_envelope(acme: Api, payload: str, status: int, code: str) -> None:
    resp = acme.client.post(
        "/api/v1/check",
        data=payload,
        headers={**acme.headers(), "Content-Type": "application/json"},
    )
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == code


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer ann_zzzzzzzz_wrong", "Basic abc"])
def test_missing_or_bad_key(client, world: World, header: str | None) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": header} if header else {}
    resp = client.post(
        "/api/v1/check",
        json={"phone": HOLDER, "sender": "acme-cards", "channel": "sms"},
        headers=headers,
    )
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"


def test_unknown_route_and_method_use_envelope(acme: Api) -> None:
    assert acme.get("/nothing").get_json()["error"]["code"] == "not_found"
    resp = acme.get("/check")
    assert resp.status_code == 405
    assert resp.get_json()["error"]["code"] == "method_not_allowed"


def test_openapi_document_and_docs_page(client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    check = doc["paths"]["/api/v1/check"]["post"]
    schema = doc["components"]["schemas"]["CheckIn"]
    assert check["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("CheckIn")
    assert set(schema["required"]) == {"phone", "sender", "channel"}
    assert schema["additionalProperties"] is False
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert b"/api/v1/check/batch" in page.data


def test_metrics_count_requests_and_decisions(client, acme: Api) -> None:  # type: ignore[no-untyped-def]
    acme.check(HOLDER)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'anning_decisions_total{decision="deny",reason="no_consent"}' in text
    assert "anning_http_request_duration_seconds" in text
    assert 'anning_outbox_depth{outbox="sms"}' in text


def test_nul_in_urls_and_codes_is_refused_not_a_500(acme: Api) -> None:
    for path in (
        "/consents?sender=a%00b",
        "/consent-requests/a%00b/confirm",
        "/numbers/1%00/reassigned?since=2026-01-01",
    ):
        resp = acme.get(path) if "confirm" not in path else acme.post(path, {"code": "123456"})
        assert resp.status_code == 422, path
        assert resp.get_json()["error"]["code"] == "validation_error"
    resp = acme.post(
        "/delegations", {"agent": "a\u0000b", "senders": ["acme-cards"], "scopes": ["check"]}
    )
    assert resp.status_code == 422


@pytest.mark.parametrize("policy", ["opt-in", "opt-out"])
@pytest.mark.parametrize("at", ["2030-01-15T12:00:00+08:00", "2030-01-15T22:30:00+08:00"])
def test_batch_answers_equal_single_checks(  # type: ignore[no-untyped-def]
    acme: Api,
    session: Session,
    world: World,
    app,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    at: str,
) -> None:
    """A batch decides numbers with no record once per time zone: same answers as one by one."""
    give_consent(session, world)
    subscribers.set_preferences(session, HOLDER2, dnd_sms=True)
    session.commit()
    phones = [
        HOLDER, HOLDER2,
        "+8613700000001", "+8613700000002",  # no record, Shanghai
        "+12125550100", "+13105550100",      # no record, New York and Los Angeles
        "+493012345678",                     # no record, Berlin
    ]  # fmt: skip
    monkeypatch.setitem(app.config, "REGISTRY", replace(app.config["REGISTRY"], policy=policy))
    batch = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": phones, "at": at}
    ).get_json()["results"]
    reasons = set()
    for phone, got in zip(phones, batch, strict=True):
        one = acme.check(phone, at=at)
        assert (got["decision"], got["reason"], got.get("next_allowed_at")) == (
            one["decision"], one["reason"], one.get("next_allowed_at"),
        ), phone  # fmt: skip
        reasons.add(got["reason"])
    assert len(reasons) >= 2


@pytest.mark.parametrize("at", ["2030-01-15T12:00:00+08:00", "2030-01-15T22:30:00+08:00"])
def test_batch_shares_answers_by_shape_naming_each_numbers_consent(  # type: ignore[no-untyped-def]
    acme: Api, session: Session, world: World, at: str
) -> None:
    """Numbers whose facts differ only in consent ids share one decision; each names its own consent.

    Two numbers hold two consents each (the later one decides), two hold one,
    one holds a voice-only consent; all recorded at the same times, so the
    batch decides each shape once. Every answer, and the consent its log row
    names, equals the single check's.
    """
    two = ["+8613700000011", "+8613700000012"]
    one = ["+8613700000013", "+8613700000014"]
    voice = "+8613700000015"
    for phone in two:
        give_consent(session, world, phone, captured_at=ago(days=3))
        give_consent(session, world, phone)
    for phone in one:
        give_consent(session, world, phone)
    give_consent(session, world, voice, channels=("voice",))
    # The same times on every number's first and second consent: the shapes coincide.
    rows = session.execute(
        text("SELECT phone, id FROM consent WHERE phone LIKE '+86137000000%' ORDER BY id")
    ).all()
    seen: dict[str, int] = {}
    first, second = ago(days=3), ago(days=1)
    for phone, consent_id in rows:
        n = seen[phone] = seen.get(phone, 0) + 1
        when = (first if n == 1 and phone in two else second).replace(tzinfo=None)
        dated(session, consent_id, when)
    session.commit()
    phones = [*two, *one, voice]
    resp = acme.post(
        "/check/batch", {"sender": "acme-cards", "channel": "sms", "phones": phones, "at": at}
    ).get_json()
    log = CheckLog.__table__  # type: ignore[attr-defined]
    batch_ids = dict(
        session.execute(
            select(log.c.phone, log.c.consent_id).where(log.c.batch_id.is_not(None))
        ).all()
    )
    assert len(set(batch_ids.values()) - {None}) == 4  # four numbers, four different consents
    for phone, got in zip(phones, resp["results"], strict=True):
        single = acme.check(phone, at=at)
        assert (got["decision"], got["reason"], got.get("next_allowed_at")) == (
            single["decision"], single["reason"], single.get("next_allowed_at"),
        ), phone  # fmt: skip
        logged = session.scalar(
            select(log.c.consent_id)
            .where(log.c.phone == phone, log.c.batch_id.is_(None))
            .order_by(log.c.id.desc())
            .limit(1)
        )
        assert batch_ids[phone] == logged, phone
    expected_latest = {phone: max(cid for p, cid in rows if p == phone) for phone in two}
    for phone in two:
        assert batch_ids[phone] == expected_latest[phone]


def test_batch_answer_is_jsonify_rendering(  # type: ignore[no-untyped-def]
    acme: Api, session: Session, world: World, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's answer, rendered as text (api/checks.py), is byte for byte ``jsonify``'s.

    Allowed, denied (with next_allowed_at, in quiet hours), repeated and
    reformatted numbers, inputs that are not strings and errors naming
    non-ASCII text; the fields in the documented order. In debug mode the
    answer is indented as ``jsonify`` indents it.
    """
    give_consent(session, world)  # HOLDER: in quiet hours at 22:30 (registry default)
    give_consent(session, world, HOLDER2)
    phones = [
        HOLDER, HOLDER2, "139-0013-9000", HOLDER2, "电话 ☎", "+8613700000001", 42,
        {"b": 1, "a": [1.5, None, True]}, "tab\there \"quoted\" \\", "+861370000000",
    ]  # fmt: skip
    payload = {"sender": "acme-cards", "channel": "sms", "phones": phones}
    for at in (NOON, "2030-01-15T22:30:00+08:00"):
        resp = acme.post("/check/batch", {**payload, "at": at})
        assert resp.status_code == 200
        assert resp.mimetype == "application/json"
        got = resp.get_json()
        rendered = json.dumps(got, separators=(",", ":"), ensure_ascii=True) + "\n"
        assert resp.data == rendered.encode(), at
        assert list(got) == [
            "results", "summary", "check_id", "checked_at", "data_version", "valid_until",
        ]  # fmt: skip
        assert [r["input"] for r in got["results"]] == phones
        allowed = 4 if at == NOON else 0  # HOLDER2 three times, as listed
        assert got["summary"] == {"allow": allowed, "deny": 5 - allowed, "invalid": 5}
        for row in got["results"]:
            if "error" in row:
                assert list(row) == ["input", "error"]
                assert list(row["error"]) == ["code", "message"]
                assert row["error"]["code"] == "invalid_phone"
            else:
                fields = ["input", "phone", "decision", "reason"]
                assert list(row) == fields + (["next_allowed_at"] * ("next_allowed_at" in row))
        quiet = got["results"][0]
        if at != NOON:
            assert quiet["reason"] == "quiet_hours"
            assert quiet["next_allowed_at"]
    monkeypatch.setattr(app, "debug", True)
    resp = acme.post("/check/batch", {**payload, "at": NOON})
    got = resp.get_json()
    assert resp.data.decode() == json.dumps(got, indent=2, ensure_ascii=True) + "\n"
    assert [r["input"] for r in got["results"]] == phones


@pytest.mark.parametrize("size", [6, 130])
def test_batch_log_rows_equal_single_checks_rows(
    acme: Api, session: Session, world: World, size: int
) -> None:
    """Every column of a batch's log rows is the single check's, in the batch's order.

    Consents (each allow names its own), a do-not-disturb holder, a calling
    address with its carrier, and numbers nobody holds: with 130 numbers the
    rows are written in runs of one answer (on SQLite one statement a run),
    with 6 row by row; on PostgreSQL by one binary COPY built in
    checks/checklog.py. The receipt lists the numbers in input order.
    """
    attest(session, "acme", "10690001")  # acme-cards' SMS port (tests/factories.py)
    held = ["+8613700000021", "+8613700000022"]
    for phone in held:
        give_consent(session, world, phone)
    subscribers.set_preferences(session, HOLDER2, dnd_sms=True)
    session.commit()
    blank = [f"+86137100{i:05d}" for i in range(size - 3)]
    phones = [held[0], held[1], HOLDER2, *blank]
    question = {"sender": "acme-cards", "channel": "sms", "at": NOON, "from": "10690001"}
    resp = acme.post("/check/batch", {**question, "phones": phones})
    assert resp.status_code == 200, resp.get_json()
    log = CheckLog.__table__  # type: ignore[attr-defined]
    columns = [c for c in log.c if c.name not in ("id", "checked_at", "batch_id", "asked_by_id")]
    batch = session.execute(
        select(log.c.batch_id, *columns).where(log.c.batch_id.is_not(None)).order_by(log.c.id)
    ).all()
    assert [row.phone for row in batch] == phones
    assert len({row.batch_id for row in batch}) == 1
    receipt = acme.get(f"/receipts/{resp.get_json()['check_id']}").get_json()
    assert [r["phone"] for r in receipt["results"]] == phones
    for phone in (*held, HOLDER2, blank[0], blank[-1]):
        acme.check(phone, **{k: v for k, v in question.items() if k != "sender"})
    singles = {
        row.phone: tuple(row)
        for row in session.execute(select(*columns).where(log.c.batch_id.is_(None))).all()
    }
    assert len(singles) == 5
    for row in batch:
        if row.phone in singles:
            assert tuple(row)[1:] == singles[row.phone], row.phone
    assert batch[0].consent_id is not None
    assert batch[1].consent_id not in (None, batch[0].consent_id)
    assert batch[0].address == "10690001"
    assert batch[0].carrier_id is not None


@pytest.mark.parametrize("path", ["pipeline", "copy"])
def test_batch_whose_log_rows_fail_answers_503_and_writes_nothing(
    acme: Api, session: Session, database_url: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the log rows go in pipeline mode while the answer renders (checklog.settle).

    A failure of their INSERT (here the statement cancelled while it waits
    for a lock another connection holds on check_log) answers 503 in the
    envelope, as any database failure: the batch row and the log rows are
    rolled back together, no answer is sent, and the next batch is written.
    ``copy``: the same for the binary COPY that scrubs, ``/sync/compare`` and
    a libpq without pipeline mode use (its driver error was a 500).
    """
    if not database_url.startswith("postgresql"):
        pytest.skip("the log rows are sent in pipeline mode on PostgreSQL only")
    if path == "copy":
        monkeypatch.setattr(checklog, "_log_sent", lambda *args: False)
    import threading

    import psycopg

    url = database_url.replace("+psycopg", "")
    phones = [f"+86137200{i:05d}" for i in range(50)]
    question = {"sender": "acme-cards", "channel": "sms", "phones": phones}
    batches = session.scalar(text("SELECT count(*) FROM check_batch"))
    session.commit()
    cancelled: list[int] = []

    def cancel_the_waiting_insert() -> None:
        with psycopg.connect(url, autocommit=True) as watcher:
            for _ in range(200):
                row = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database() AND (query LIKE 'INSERT INTO check_log%%' OR query LIKE 'COPY check_log%%')"
                ).fetchone()
                if row is not None:
                    watcher.execute("SELECT pg_cancel_backend(%s)", (row[0],))
                    cancelled.append(row[0])
                    return
                threading.Event().wait(0.05)

    with psycopg.connect(url) as holder:
        holder.execute("SET lock_timeout = '5s'")
        holder.execute("LOCK TABLE check_log IN ACCESS EXCLUSIVE MODE")
        watcher = threading.Thread(target=cancel_the_waiting_insert)
        watcher.start()
        resp = acme.post("/check/batch", question)
        watcher.join()
        holder.rollback()
    assert cancelled
    assert resp.status_code == 503, resp.get_json()
    assert resp.get_json()["error"]["code"] == "unavailable"
    assert session.scalar(text("SELECT count(*) FROM check_batch")) == batches
    logged = select(func.count()).select_from(CheckLog).where(CheckLog.phone.in_(phones))  # type: ignore[attr-defined]
    assert session.scalar(logged) == 0
    session.commit()
    again = acme.post("/check/batch", question)
    assert again.status_code == 200
    assert session.scalar(logged) == len(phones)
