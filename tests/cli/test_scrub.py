"""``registry scrub``: a CSV of numbers in, phone, decision and reason out, every check logged."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.checks.models import CheckBatch, CheckLog
from registry.subscribers import services as subscribers
from registry.timeutil import utcnow
from tests.api.test_check import give_consent
from tests.factories import World

Cli = Callable[..., Result]
A, B, C = "+8613100000051", "+8613100000052", "+8613100000053"


@pytest.fixture
def noon(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Run scrubs at the next noon in Shanghai, inside the calling hours whenever the suite runs."""
    shanghai = ZoneInfo("Asia/Shanghai")
    today = utcnow().astimezone(shanghai).date()
    at = datetime.combine(today + timedelta(days=1), time(12), tzinfo=shanghai)
    monkeypatch.setattr("registry.cli.checks.utcnow", lambda: at)
    return at


@pytest.fixture
def holders(session: Session, world: World) -> None:
    """A consents to acme-cards; B turned on do-not-disturb for SMS; C said nothing."""
    give_consent(session, world, A)
    subscribers.set_preferences(session, B, dnd_sms=True)
    session.commit()


def rows(text: str) -> list[list[str]]:
    """Parse CSV output."""
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.usefixtures("holders", "noon")
def test_scrub_writes_a_decision_for_every_row(
    cli: Cli, tmp_path: Path, session: Session, world: World
) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text(
        "\ufeffphone,name\n"  # a BOM and a header, as spreadsheets write them
        "13100000051,Li\n"
        "+86 131-0000-0052,Wang\n"
        "１３１００００００５３,Zhang\n"  # full-width digits
        "not a number,?\n"
        "\n"
        "12345\n"
        "0086 131 0000 0051\n",  # A again, in another form
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "sms", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert rows(out.read_text(encoding="utf-8")) == [
        ["input", "phone", "decision", "reason"],
        ["13100000051", A, "allow", "consent"],
        ["'+86 131-0000-0052", B, "deny", "dnd"],  # echoed input, defused (registry.csvcells)
        ["１３１００００００５３", C, "deny", "no_consent"],
        ["not a number", "", "invalid", "invalid_phone"],
        ["12345", "", "invalid", "invalid_phone"],
        ["0086 131 0000 0051", A, "allow", "consent"],
    ]
    assert "6 numbers: 2 allow, 2 deny, 2 invalid" in result.output

    # Every number checked is in the check log, as a sender would need it for a complaint.
    logged = session.execute(
        select(CheckLog.phone, CheckLog.decision, CheckLog.reason, CheckLog.sender_id)
        .where(CheckLog.phone.in_([A, B, C]))  # type: ignore[attr-defined]
        .order_by(CheckLog.phone)
    ).all()
    acme = world.sender_ids["acme-cards"]
    assert [tuple(r) for r in logged] == [
        (A, "allow", "consent", acme),
        (B, "deny", "dnd", acme),
        (C, "deny", "no_consent", acme),
    ]
    batch = session.scalars(select(CheckBatch).where(CheckBatch.sender_id == acme)).one()
    assert (batch.size, batch.allowed, batch.denied, batch.invalid) == (6, 2, 2, 2)


@pytest.mark.usefixtures("holders", "noon")
def test_scrub_writes_to_stdout_and_checks_the_channel_asked(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("13100000052\n13100000051\n", encoding="utf-8")
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "voice")
    assert result.exit_code == 0, result.output
    # B's do-not-disturb is for SMS only; on voice nothing recorded means no consent.
    assert rows(result.stdout) == [
        ["input", "phone", "decision", "reason"],
        ["13100000052", B, "deny", "no_consent"],
        ["13100000051", A, "allow", "consent"],
    ]


@pytest.mark.usefixtures("holders", "noon")
def test_scrub_for_service_allows_everyone_valid(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("13100000052\nnope\n", encoding="utf-8")
    args = ("scrub", str(source), "--sender", "acme-cards", "--channel", "sms")
    result = cli(*args, "--purpose", "service")
    assert rows(result.stdout)[1:] == [
        ["13100000052", B, "allow", "not_marketing"],
        ["nope", "", "invalid", "invalid_phone"],
    ]


@pytest.mark.usefixtures("world")
def test_scrub_with_an_unknown_sender_fails_without_output(
    cli: Cli, tmp_path: Path, session: Session
) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("13100000051\n", encoding="utf-8")
    result = cli("scrub", str(source), "--sender", "nobody-deals", "--channel", "sms")
    assert result.exit_code == 1
    assert "nobody-deals" in result.output
    assert session.scalar(select(CheckLog).where(CheckLog.phone == A)) is None


def test_scrub_needs_a_known_channel(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text("13100000051\n", encoding="utf-8")
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "fax")
    assert result.exit_code == 2
    assert "fax" in result.output
