"""``registry demo`` and ``registry db check`` (models and migrations agree: ``alembic check``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.orm import Session

from registry.cli.demo import DEMO_HOLDERS, DEMO_LOGIN
from registry.consent.models import Consent
from registry.database.naming import metadata
from registry.orgs.models import Organization
from registry.senders.models import Sender
from tests.conftest import NOON
from tests.factories import World

Cli = Callable[..., Result]


def test_demo_fills_an_empty_registry_with_working_keys(
    cli: Cli, client: FlaskClient, session: Session
) -> None:
    result = cli("demo")
    assert result.exit_code == 0, result.output
    keys = dict(re.findall(r"API key for ([\w-]+): (\S+)", result.output))
    assert {"acme-bank", "shopmall", "citytel", "regulator"} <= set(keys)
    assert DEMO_LOGIN in result.output
    assert "registry SMS number: 10690000" in result.output
    assert session.scalar(select(func.count()).select_from(Sender)) >= 3
    assert session.scalar(select(func.count()).select_from(Consent)) >= len(DEMO_HOLDERS)

    # The printed key answers checks, and the demo data decides them.
    headers = {"Authorization": f"Bearer {keys['acme-bank']}"}
    body = {"phone": DEMO_HOLDERS[0], "sender": "acme-cards", "channel": "sms", "at": NOON}
    answer = client.post("/api/v1/check", json=body, headers=headers).get_json()
    assert (answer["decision"], answer["reason"]) == ("allow", "consent")
    # The demo carrier attested the demo addresses: naming one as ``from`` still allows.
    for address in ("10690001", "+86 21 6000 0001"):
        with_from = {**body, "from": address}
        answer = client.post("/api/v1/check", json=with_from, headers=headers).get_json()
        assert (answer["decision"], answer["reason"]) == ("allow", "consent"), address
    with_from = {**body, "from": "10690003"}  # shopmall's port, not acme-cards'
    answer = client.post("/api/v1/check", json=with_from, headers=headers).get_json()
    assert (answer["decision"], answer["reason"]) == ("deny", "unregistered_caller")
    body["phone"] = DEMO_HOLDERS[1]  # do-not-disturb, and consent to another sender only
    answer = client.post("/api/v1/check", json=body, headers=headers).get_json()
    assert (answer["decision"], answer["reason"]) == ("deny", "dnd")

    # The printed gateway key brings replies to the registry's own number, and
    # is refused where a sender's key would be used.
    gateway = {"Authorization": f"Bearer {keys['anning-sms']}"}
    reply = {"from": DEMO_HOLDERS[0], "to": "10690000", "text": "HELP"}
    resp = client.post("/api/v1/gateway/inbound-sms", json=reply, headers=gateway)
    assert (resp.status_code, resp.get_json()["action"]) == (200, "help")
    resp = client.post("/api/v1/check", json=body, headers=gateway)
    assert resp.status_code == 403


def test_the_demo_carrier_holds_the_demo_numbers(
    cli: Cli, client: FlaskClient, session: Session
) -> None:
    keys = dict(re.findall(r"API key for ([\w-]+): (\S+)", cli("demo").output))
    rows = [
        {"phone": phone, "disconnected_at": "2026-03-01T00:00:00+08:00"}
        for phone in (DEMO_HOLDERS[0], DEMO_LOGIN, "+8613900000001", "+8613800138000")
    ]
    headers = {"Authorization": f"Bearer {keys['citytel']}"}
    resp = client.post("/api/v1/numbers/disconnections", json={"disconnections": rows},
                       headers=headers)  # fmt: skip
    body = resp.get_json()
    assert body["accepted"] == 3
    assert [(r["index"], r["error"]["code"]) for r in body["rejected"]] == [(3, "not_your_number")]


def test_demo_creates_a_missing_instance_folder(
    cli: Cli, app: Flask, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With REGISTRY_DATABASE_URL and REGISTRY_SECRET_KEY set nothing else creates it.
    instance = tmp_path / "not-yet"
    monkeypatch.setattr(app, "instance_path", str(instance))
    result = cli("demo")
    assert result.exit_code == 0, result.output
    key = dict(re.findall(r"API key for ([\w-]+): (\S+)", result.output))["acme-bank"]
    assert (instance / "demo_api_key").read_text() == key


def test_demo_refuses_a_registry_that_is_not_empty(cli: Cli, session: Session) -> None:
    assert cli("demo").exit_code == 0
    orgs = session.scalar(select(func.count()).select_from(Organization))
    again = cli("demo")
    assert again.exit_code == 1
    assert "not empty" in again.output
    assert "API key" not in again.output
    assert session.scalar(select(func.count()).select_from(Organization)) == orgs


def test_demo_leaves_existing_data_alone(cli: Cli, session: Session, world: World) -> None:
    result = cli("demo")
    assert result.exit_code == 1
    slugs = session.scalars(select(Organization.slug).order_by(Organization.slug)).all()
    assert slugs == sorted(world.org_ids)


def test_db_check_passes_when_models_and_migrations_agree(cli: Cli) -> None:
    result = cli("db", "check")
    assert result.exit_code == 0, result.output
    assert "agree" in result.output


def drifted(change: Callable[[MetaData], None]) -> MetaData:
    """Return a copy of the models' metadata with one change the migrations do not have."""
    copy = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(copy)
    change(copy)
    return copy


@pytest.mark.parametrize(
    ("change", "mentioned"),
    [
        (lambda m: m.tables["sender"].append_column(Column("motto", String(40))), "motto"),
        (lambda m: Table("throwaway", m, Column("id", Integer, primary_key=True)), "throwaway"),
        (lambda m: m.remove(m.tables["check_batch"]), "check_batch"),
    ],
    ids=["added column", "added table", "dropped table"],
)
def test_db_check_fails_when_a_model_changes_without_a_migration(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, change: Callable[[MetaData], None], mentioned: str
) -> None:
    # migrations/env.py reads registry.database.naming.metadata each time Alembic runs it.
    monkeypatch.setattr("registry.database.naming.metadata", drifted(change))
    result = cli("db", "check")
    assert result.exit_code == 1
    assert mentioned in result.output
    assert "agree" not in result.output


def test_the_holders_build_is_not_cut_short_by_the_statement_timeout(
    app: Flask, session: Session
) -> None:
    # REGISTRY_DATABASE_STATEMENT_TIMEOUT bounds a request's statements; one INSERT of
    # millions of holders outlasts it (60 s on a slow machine at 10M). A short timeout on
    # the test's transaction stands in for it: the build lifts it for its own transaction.
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has no statement timeout")
    session.execute(text("SET LOCAL statement_timeout = 200"))
    result = app.test_cli_runner().invoke(args=["demo", "--holders", "300000"])
    assert result.exit_code == 0, result.output
    assert (
        session.scalar(
            select(func.count()).select_from(Consent).where(Consent.evidence_method == "synthetic")
        )
        == 150_000
    )


def test_demo_generates_synthetic_holders_that_checks_read(app, session) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from registry.consent.models import Consent, OptOut
    from registry.subscribers.models import Subscriber

    result = app.test_cli_runner().invoke(args=["demo", "--holders", "300"])
    assert result.exit_code == 0, result.output
    assert (
        session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.phone.like("+86139%"))
        )
        == 100
    )
    assert (
        session.scalar(
            select(func.count()).select_from(Consent).where(Consent.evidence_method == "synthetic")
        )
        == 150
    )
    assert (
        session.scalar(select(func.count()).select_from(OptOut).where(OptOut.source == "synthetic"))
        == 30
    )
    # Holder 0 has SMS do-not-disturb, quiet hours at noon and a consent from the first sender:
    # at 10:00 the consent wins over do-not-disturb.
    key = next(
        line for line in result.output.splitlines() if line.startswith("API key for acme-bank")
    ).split()[-1]
    resp = app.test_client().post(
        "/api/v1/check",
        json={
            "phone": "+8613900000000",
            "sender": "acme-cards",
            "channel": "sms",
            "at": "2030-01-15T10:00:00+08:00",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.get_json()["reason"] == "consent"
    resp = app.test_client().post(
        "/api/v1/check",
        json={
            "phone": "+8613900000007",
            "sender": "shopmall-deals",
            "channel": "sms",
            "at": "2030-01-15T10:00:00+08:00",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert resp.status_code == 403  # acme's key may not ask for ShopMall's sender
