"""``registry disconnections`` and ``registry ranges``: the operator's side of number ranges."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.numbers.models import Disconnection, NumberRange
from registry.orgs import services as orgs
from registry.timeutil import iso, utcnow
from tests.conftest import Api
from tests.factories import HOLDER, HOLDER2, World

Cli = Callable[..., Result]


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "disconnections.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _audit(session: Session, action: str) -> list[StaffAudit]:
    return list(session.scalars(select(StaffAudit).where(StaffAudit.action == action)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--carrier", "nobody"], "no organization 'nobody'"),
        (["--carrier", "acme"], "acme is not a carrier"),
        ([], "Missing option '--carrier'"),
    ],
)
def test_import_must_name_a_carrier_organization(
    cli: Cli, world: World, session: Session, tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli("disconnections", "import", _file(tmp_path, f"{HOLDER},2026-03-01\n"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert session.scalars(select(Disconnection)).all() == []


def test_import_with_a_year_one_row_keeps_the_good_rows_and_names_the_bad_lines(
    cli: Cli, world: World, session: Session, tmp_path: Path
) -> None:
    tomorrow = iso(utcnow() + timedelta(days=1))
    path = _file(
        tmp_path,
        "phone,disconnected_at\n"
        f"{HOLDER},2026-03-01T00:00:00+08:00\n"  # line 2: good
        f"{HOLDER2},0001-01-01T00:00:00\n"  # line 3: year 1, east of Greenwich
        f"{HOLDER2},0001-01-01\n"  # line 4
        f"{HOLDER2},9999-12-31T23:59:59-12:00\n"  # line 5: past the calendar's end in UTC
        f"{HOLDER2},{tomorrow}\n"  # line 6: future
        "+8613300133000,2026-03-01\n"  # line 7: not this carrier's number
        "not a phone,2026-03-01\n"  # line 8
        f"{HOLDER2},2026-04-01\n",  # line 9: good
    )
    result = cli("disconnections", "import", path, "--carrier", "carrier")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "2 disconnections recorded, 6 rows rejected" in result.output
    for line in (3, 4, 5, 6, 8):
        assert f"line {line}:" in result.output
    assert "line 7: +8613300133000 is not in a number range" in result.output
    assert "(not_your_number)" in result.output
    assert "Traceback" not in result.output
    assert {d.phone for d in session.scalars(select(Disconnection))} == {HOLDER, HOLDER2}
    [entry] = _audit(session, "disconnections.import")
    assert (entry.actor, entry.subject) == ("cli", "org:carrier")
    assert json.loads(entry.data or "{}")["accepted"] == 2


def test_import_of_a_file_that_is_not_utf8_says_so(cli: Cli, world: World, tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("号码,时间\n".encode("gbk") + f"{HOLDER},2026-03-01\n".encode())
    result = cli("disconnections", "import", str(path), "--carrier", "carrier")
    assert result.exit_code == 2, result.output
    assert "not a UTF-8 CSV file" in result.output


def test_ranges_assign_list_revoke_audited(cli: Cli, world: World, session: Session) -> None:
    orgs.create_org(session, "telecom", "Telecom", "carrier")
    orgs.create_org(session, "mvno", "MVNO", "carrier")
    session.commit()
    result = cli("ranges", "assign", "+86 133", "telecom")
    assert result.exit_code == 0, result.output
    assert "assigned +86133 to telecom" in result.output
    result = cli("ranges", "assign", "+8613301", "mvno", "--host", "telecom")
    assert result.exit_code == 0, result.output
    listed = cli("ranges", "list").output
    assert "+86133\ttelecom\t-" in listed
    assert "+8613301\tmvno\ttelecom +86133" in listed
    assert "+86138\tcarrier" in listed
    only = cli("ranges", "list", "--carrier", "mvno").output
    assert only.strip().splitlines()[0].startswith("+8613301\tmvno")
    assert len(only.strip().splitlines()) == 1
    # Revoking the host's range takes its sub-assignments with it.
    result = cli("ranges", "revoke", "+86133")
    assert result.exit_code == 0, result.output
    live = {r.prefix for r in session.scalars(select(NumberRange).where(NumberRange.revoked_at.is_(None)))}  # type: ignore[union-attr]  # fmt: skip
    assert live == {"+86138", "+86139"}
    assert "revoked" in cli("ranges", "list", "--all").output
    assert [e.subject for e in _audit(session, "range.assign")] == [
        "range:+86133",
        "range:+8613301",
    ]
    assert [e.actor for e in _audit(session, "range.revoke")] == ["cli"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["+8613", "carrier"], "overlaps the range +86138"),  # around an assigned range
        (["+861380", "carrier"], "overlaps the range +86138"),  # inside one
        (["+86150", "nobody"], "no organization 'nobody'"),
        (["+86150", "acme"], "acme is not a carrier"),
        (["86150", "carrier"], "+ followed by digits"),
        (["+", "carrier"], "+ followed by digits"),
        (["+0150", "carrier"], "does not start with a country calling code"),
        (["+8", "carrier"], "does not start with a country calling code"),
        (["+" + "1" * 16, "carrier"], "at most 15 digits"),
    ],
)
def test_ranges_assign_refuses_bad_prefixes_and_overlaps(
    cli: Cli, world: World, args: list[str], message: str
) -> None:
    result = cli("ranges", "assign", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output


@pytest.fixture
def active(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        app.config, "REGISTRY", replace(app.config["REGISTRY"], require_confirmation=False)
    )


def test_the_regulator_retracts_from_the_cli_and_the_consent_counts_again(
    active: None, cli: Cli, acme: Api, carrier: Api, session: Session
) -> None:
    captured = iso(utcnow() - timedelta(days=30))
    acme.post("/consents", {"phone": HOLDER, "sender": "acme-cards", "channels": ["sms"],
                            "evidence": {"method": "web_form", "captured_at": captured}})  # fmt: skip
    when = iso(utcnow() - timedelta(days=1))
    carrier.post("/numbers/disconnections",
                 {"disconnections": [{"phone": HOLDER, "disconnected_at": when}]})  # fmt: skip
    assert acme.check(HOLDER)["reason"] == "reassigned"
    listed = cli("disconnections", "list", HOLDER).output
    assert f"{HOLDER}\t{when}\tcarrier\tstanding" in listed
    result = cli("disconnections", "retract", HOLDER, when, "--reason", "carrier's file error")
    assert result.exit_code == 0, result.output
    assert "1 consents restored" in result.output
    assert acme.check(HOLDER)["reason"] == "consent"
    assert "retracted" in cli("disconnections", "list", HOLDER).output
    [entry] = _audit(session, "disconnection.retract")
    data = json.loads(entry.data or "{}")
    assert (entry.actor, data["carrier"], data["restored_consents"]) == ("cli", "carrier", 1)
    again = cli("disconnections", "retract", HOLDER, when, "--reason", "twice")
    assert again.exit_code == 1
    assert "no standing disconnection" in again.output
    bad = cli("disconnections", "retract", HOLDER, "0001-01-01T00:00:00", "--reason", "x")
    assert bad.exit_code == 1
    assert "out of range" in bad.output
