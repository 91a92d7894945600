"""``registry org create``, ``key create``, ``sender create``."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.orgs.models import Organization
from registry.senders.models import Sender, SenderAddress
from tests.conftest import NOON

Cli = Callable[..., Result]


def test_org_create(cli: Cli, session: Session) -> None:
    result = cli(
        "org", "create", "north-bank", "--name", "North Bank 北方银行", "--role", "platform"
    )
    assert result.exit_code == 0, result.output
    org = session.scalars(select(Organization).where(Organization.slug == "north-bank")).one()
    assert (org.name, org.role) == ("North Bank 北方银行", "platform")


def test_org_create_defaults_to_sender_and_refuses_a_taken_slug(cli: Cli, session: Session) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    again = cli("org", "create", "north-bank", "--name", "Another")
    assert again.exit_code != 0
    assert "north-bank" in again.output
    orgs = session.scalars(select(Organization).where(Organization.slug == "north-bank")).all()
    assert [(o.name, o.role) for o in orgs] == [("North Bank", "sender")]


def test_org_create_rejects_an_unknown_role(cli: Cli) -> None:
    result = cli("org", "create", "north-bank", "--name", "North Bank", "--role", "king")
    assert result.exit_code == 2
    assert "king" in result.output


def test_a_created_key_is_the_last_line_and_authenticates_a_check(
    cli: Cli, client: FlaskClient
) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    created = cli(
        "sender", "create", "north-bank", "north-cards", "--name", "North Cards",
        "--category", "finance", "--address", "10690099",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    result = cli("key", "create", "north-bank", "--name", "dialer")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert " " not in key
    assert len(key) >= 20
    # Only the key goes to stdout, so `KEY=$(registry key create …)` works.
    assert result.stdout.strip() == key

    body = {"phone": "+86 131 0000 0042", "sender": "north-cards", "channel": "sms", "at": NOON}
    resp = client.post("/api/v1/check", json=body, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    assert (answer["phone"], answer["decision"], answer["reason"]) == (
        "+8613100000042", "deny", "no_consent",
    )  # fmt: skip
    bad = client.post("/api/v1/check", json=body, headers={"Authorization": f"Bearer {key}x"})
    assert bad.status_code == 401


def test_two_keys_differ(cli: Cli) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    first = cli("key", "create", "north-bank").stdout.strip().splitlines()[-1]
    second = cli("key", "create", "north-bank").stdout.strip().splitlines()[-1]
    assert first != second


def test_key_create_for_an_unknown_org_fails(cli: Cli) -> None:
    result = cli("key", "create", "nobody")
    assert result.exit_code != 0
    assert "nobody" in result.output
    assert result.stdout.strip() == ""  # no key-looking line for a script to pick up


def test_sender_create_with_addresses(cli: Cli, client: FlaskClient, session: Session) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    result = cli(
        "sender", "create", "north-bank", "north-loans", "--name", "North Loans",
        "--category", "finance", "--address", "1069 0088", "--address", "+86-21-6000-0088",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sender = session.scalars(select(Sender).where(Sender.code == "north-loans")).one()
    assert (sender.name, sender.category) == ("North Loans", "finance")
    addresses = session.scalars(
        select(SenderAddress.address).where(SenderAddress.sender_id == sender.id)
    ).all()
    assert sorted(addresses) == ["+862160000088", "10690088"]


def test_sender_create_rejects_a_bad_category(cli: Cli, session: Session) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    result = cli(
        "sender", "create", "north-bank", "north-x", "--name", "X", "--category", "weapons"
    )
    assert result.exit_code == 2
    assert "weapons" in result.output
    assert "finance" in result.output
    assert session.scalar(select(Sender).where(Sender.code == "north-x")) is None


def test_sender_create_rejects_a_bad_address_and_a_taken_code(cli: Cli, session: Session) -> None:
    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    bad = cli(
        "sender", "create", "north-bank", "north-x", "--name", "X", "--category", "retail",
        "--address", "call us",
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "call us" in bad.output
    assert session.scalar(select(Sender).where(Sender.code == "north-x")) is None
    ok = ("sender", "create", "north-bank", "north-x", "--name", "X", "--category", "retail")
    assert cli(*ok).exit_code == 0
    taken = cli(*ok)
    assert taken.exit_code == 1
    assert "north-x" in taken.output


def test_sender_create_for_an_unknown_org_fails(cli: Cli) -> None:
    result = cli("sender", "create", "nobody", "x-deals", "--name", "X", "--category", "retail")
    assert result.exit_code == 1
    assert "nobody" in result.output


def test_cli_commits_stay_inside_the_tests_transaction(cli: Cli, session: Session) -> None:
    """The CLI's own sessions join the test's transaction: seen here, rolled back after."""
    from registry.extensions import db

    assert cli("org", "create", "north-bank", "--name", "North Bank").exit_code == 0
    query = select(Organization.slug).where(Organization.slug == "north-bank")
    assert session.scalar(query) == "north-bank"
    # A plain DB-API connection outside the test's transaction (and outside the engine's
    # BEGIN IMMEDIATE on SQLite, which would wait for the test's lock) sees nothing.
    other = db.engine.raw_connection()
    try:
        cur = other.cursor()
        cur.execute("SELECT count(*) FROM organization WHERE slug = 'north-bank'")
        assert cur.fetchone()[0] == 0
    finally:
        other.close()


def test_org_create_with_credit_code_and_region(cli: Cli, session: Session) -> None:
    bad = cli("org", "create", "east-bank", "--name", "East", "--credit-code", "91310000MA1FL0000M")
    assert bad.exit_code != 0
    assert "check character does not match" in bad.output
    assert session.scalar(select(Organization).where(Organization.slug == "east-bank")) is None
    ok = cli("org", "create", "east-bank", "--name", "East", "--credit-code",
             "91310000MA1FL0000N", "--region", "上海")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "91310000MA1FL0000N" in ok.output
    again = cli("org", "create", "west-bank", "--name", "West", "--credit-code",
                "91310000MA1FL0000N")  # fmt: skip
    assert again.exit_code != 0
    assert "belongs to east-bank" in again.output
    assert cli("org", "identity", "east-bank", "--region", "浙江").exit_code == 0
    session.expire_all()
    org = session.scalars(select(Organization).where(Organization.slug == "east-bank")).one()
    assert (org.credit_code, org.region) == (None, "浙江")


def test_listed_org_gets_no_key_or_sender_from_the_cli(cli: Cli, session: Session) -> None:
    from datetime import timedelta

    from registry.timeutil import utcnow

    assert cli("org", "create", "east-bank", "--name", "East").exit_code == 0
    org = session.scalars(select(Organization).where(Organization.slug == "east-bank")).one()
    org.listed_until = utcnow() + timedelta(days=30)
    session.commit()
    key = cli("key", "create", "east-bank")
    assert key.exit_code != 0
    assert "on the credit list" in key.output
    sender = cli("sender", "create", "east-bank", "east-cards", "--name", "Cards",
                 "--category", "finance")  # fmt: skip
    assert sender.exit_code != 0
    assert "on the credit list" in sender.output
