"""``registry scrub`` decides once per shape of facts: every answer still a single check's.

A scrub reads its chunk's facts as the driver gives them and decodes one row
set per shape (registry/scrubs/answers.py, facts.load_shapes). Numbers whose
records differ only in their consents' ids share a decision, each naming its
own consent; numbers of the same shape in another zone are decided again.
Every answer, and the consent every log row names, must equal the single
check's for the same question.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.checks import facts
from registry.checks.models import CheckLog
from registry.cli.checks import _text
from registry.consent import optouts
from registry.consent import services as consents
from registry.decision import Decision
from registry.numbers.models import Disconnection
from registry.orgs.services import Caller
from registry.scrubs.answers import Answered
from registry.senders.services import resolve_sender
from registry.subscribers import services as subscribers
from registry.timeutil import iso, utcnow
from tests.api.test_check import dated, give_consent
from tests.cli.test_scrub import noon  # noqa: F401  (the scrub at noon in Shanghai: late evening in New York)
from tests.conftest import Api
from tests.factories import World, ago

Cli = Callable[..., Result]
SHARED = [f"+86131000000{70 + n}" for n in range(5)]  # one consent each, all at the same times
TWICE = ["+8613100000080", "+8613100000081"]  # two consents each, the later one decides
VOICE = "+8613100000082"  # a voice-only consent
PENDING = "+8613100000083"  # a consent waiting for confirmation
OPTED_OUT = "+8613100000084"  # a consent, then an SMS opt-out
DND = "+8613100000085"  # a consent and do-not-disturb for SMS: the consent wins
CAPPED = "+8613100000086"  # a consent and a cap of one a day, spent before the scrub
ROOMY = "+8613100000087"  # a consent and a cap of five a day
CUT = "+8613100000088"  # a consent, then the number was disconnected
NEW_YORK = "+12125550123"  # a fictional 555-01xx number: the shared shape in another zone
UNKNOWN = ["+8613100000090", "+8613100000091"]


def _opt_out(session: Session, world: World, phone: str) -> None:
    org = world.org_ids["acme"]
    sender = resolve_sender(
        session, Caller(org, "acme", "", "sender", None), "acme-cards", "optout", utcnow()
    )
    optouts.record_optout(
        session, consents.Actor("org:acme", "api", org), sender, phone, ["sms"], "call"
    )
    session.commit()


@pytest.fixture
def holders(session: Session, world: World) -> None:
    for phone in [*SHARED, NEW_YORK, DND, CAPPED, ROOMY, OPTED_OUT]:
        give_consent(session, world, phone)
    for phone in TWICE:
        give_consent(session, world, phone, captured_at=ago(days=3))
        give_consent(session, world, phone)
    give_consent(session, world, VOICE, channels=("voice",))
    give_consent(session, world, PENDING, confirmed=False)
    give_consent(session, world, CUT, captured_at=ago(days=10))
    session.add(Disconnection(phone=CUT, disconnected_at=ago(days=2)))
    subscribers.set_preferences(session, DND, dnd_sms=True)
    subscribers.set_frequency_caps(session, CAPPED, {"sms": (1, None)})
    subscribers.set_frequency_caps(session, ROOMY, {"sms": (5, None)})
    session.commit()
    _opt_out(session, world, OPTED_OUT)
    # The same times on every first and every second consent: the shapes coincide.
    first, second = ago(days=3).replace(tzinfo=None), ago(days=1).replace(tzinfo=None)
    rows = session.execute(text("SELECT phone, id FROM consent ORDER BY id")).all()
    seen: dict[str, int] = {}
    for phone, consent_id in rows:
        if phone in (CUT, PENDING):
            continue
        n = seen[phone] = seen.get(phone, 0) + 1
        when = first if n == 1 and phone in TWICE else second
        dated(session, consent_id, when)
    session.commit()


@pytest.mark.usefixtures("holders")
def test_scrub_answers_by_shape_equal_single_checks_naming_each_numbers_consent(
    cli: Cli,
    acme: Api,
    session: Session,
    tmp_path: Path,
    noon: datetime,  # noqa: F811
) -> None:
    at = iso(noon)
    assert acme.check(CAPPED, at=at)["decision"] == "allow"  # the cap's one slot, spent
    phones = [*SHARED, *TWICE, VOICE, PENDING, OPTED_OUT, DND, CAPPED, ROOMY, CUT, NEW_YORK]
    phones += UNKNOWN
    source = tmp_path / "numbers.csv"
    source.write_text("phone\n" + "".join(f"{p}\nnot a number\n" for p in phones))
    out = tmp_path / "out.csv"
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "sms", "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))[1:]
    assert [line[2] for line in lines[1::2]] == ["invalid"] * len(phones)
    answers = {line[1]: (line[2], line[3]) for line in lines[::2]}
    log = CheckLog.__table__  # type: ignore[attr-defined]
    scrubbed = dict(
        session.execute(
            select(log.c.phone, log.c.consent_id).where(log.c.batch_id.is_not(None))
        ).all()
    )
    reasons = set()
    for phone in phones:
        single = acme.check(phone, at=at)
        assert answers[phone] == (single["decision"], single["reason"]), phone
        logged = session.scalar(
            select(log.c.consent_id)
            .where(log.c.phone == phone, log.c.batch_id.is_(None))
            .order_by(log.c.id.desc())
            .limit(1)
        )
        assert scrubbed[phone] == logged, phone
        reasons.add(single["reason"])
    # The cases meant: shared consents, caps spent and not, refusals, another zone.
    assert answers[CAPPED] == ("deny", "frequency_capped")
    assert answers[ROOMY] == ("allow", "consent")
    assert answers[NEW_YORK][1] != answers[SHARED[0]][1]
    assert len({scrubbed[p] for p in SHARED}) == len(SHARED)  # each its own consent
    assert {"consent", "opted_out", "no_consent", "frequency_capped"} <= reasons


def test_scrub_output_lines_are_the_csv_writers() -> None:
    """The scrub writes its lines itself; byte for byte what ``csv.writer`` writes for them."""
    cells = ["13100000051", "+86 131-0000-0052", "=1+2", "a,b", 'say "hi"', "x\ny", "\r", " ",
             "'", "@SUM(1)", "\t1", "１３１", "-", "a;b", "é"]  # fmt: skip
    allow = Decision("allow", "consent", 7)
    phones: list[str | None] = [
        None if i % 3 == 0 else f"+86131000000{i:02d}" for i in range(len(cells))
    ]
    decisions = [None if p is None else allow for p in phones]
    now = utcnow()
    result = Answered(cells, phones, decisions, 0, 0, 0, 1, now, 0, now)
    expected = io.StringIO()
    writer = csv.writer(expected)
    for cell, phone, dec in zip(cells, phones, decisions, strict=True):
        shown = cell if not cell.startswith(("=", "+", "-", "@", "\t", "\r")) else "'" + cell
        if dec is None:
            writer.writerow([shown, "", "invalid", "invalid_phone"])
        else:
            writer.writerow([shown, phone, dec.decision, dec.reason])
    assert _text(result) == expected.getvalue()
    # A chunk with nothing to quote is written without csv.writer: the same bytes.
    plain = [c for c in cells if not any(ch in c for ch in ',"\r\n')]
    phones = phones[: len(plain)]
    decisions = decisions[: len(plain)]
    result = Answered(plain, phones, decisions, 0, 0, 0, 1, now, 0, now)
    expected = io.StringIO()
    writer = csv.writer(expected)
    for cell, phone, dec in zip(plain, phones, decisions, strict=True):
        shown = cell if not cell.startswith(("=", "+", "-", "@", "\t", "\r")) else "'" + cell
        writer.writerow(
            [shown, "", "invalid", "invalid_phone"]
            if dec is None
            else [shown, phone, "allow", "consent"]
        )
    assert _text(result) == expected.getvalue()


def test_a_scrubs_facts_probe_each_phone_index_with_the_list_outermost(session: Session) -> None:
    """SQLite: every branch of the scrub's statement reads the list once, probing the phone index.

    A planner free to choose (a plain join) ran ``opt_out``, which has no
    ANALYZE statistics, through its sender index with the list inside: a pass
    over the list for every opt-out of the sender. The CROSS JOIN keeps the list outermost.
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        pytest.skip("SQLite's planner; PostgreSQL plans the join by its statistics")
    query = facts._RAW["sqlite"]
    entry, args = query._args(conn.dialect, {"sender": 1, "at": utcnow(), "phones": "[]"})
    plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + entry[0].string, args)]
    scans = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
    assert [s for s in scans if s.startswith("SCAN")] == ["SCAN anon_1 VIRTUAL TABLE INDEX 1:"] * 4
    for table in ("consent", "opt_out", "disconnection"):
        assert any(s.startswith(f"SEARCH {table} USING INDEX") and "(phone=?" in s for s in scans)
    assert any(s.startswith("SEARCH subscriber USING INDEX") for s in scans)
