"""The preflight check: gather facts in one query, decide, log, sign a receipt.

This is the hot path. It uses SQLAlchemy Core and plain rows: building ORM
objects would cost more than the rest of the request (STYLE.md, habit 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import BindParameter
from sqlmodel import col

from registry import phones
from registry.checks.models import CheckBatch, CheckLog
from registry.config import Settings
from registry.consent.models import Consent, OptOut
from registry.db import Prepared, table_of
from registry.decision import ConsentFact, Decision, Facts, OptOutFact, Policy, Preferences, decide
from registry.errors import InvalidPhoneError, NotFound, TooLarge
from registry.events.sealing import known_seq
from registry.numbers.models import Disconnection
from registry.orgs.services import KEY_FINGERPRINT, KEY_NOW
from registry.senders.models import Sender
from registry.senders.services import (
    DELEGATION_FINGERPRINT,
    GRANTS_NOW,
    SENDER_FINGERPRINT,
    SENDER_NOW,
    SenderRef,
    StaleDirectory,
)
from registry.subscribers.models import Subscriber
from registry.timeutil import UTCDateTime, iso, utcnow
from registry.tokens import Signer

# SQLite allows 32,766 bound parameters; four branches of the fact query each
# take the chunk's phones, so a chunk stays well under that. PostgreSQL takes
# the chunk as one array parameter (``= ANY``): a whole batch in one query,
# and no statement with thousands of placeholders for the driver to parse.
CHUNK = 2_000
PG_CHUNK = 10_000


c, o, s, d = (table_of(t) for t in (Consent, OptOut, Subscriber, Disconnection))
_phones: BindParameter[list[str]] = bindparam("phones", expanding=True)
_NULL_TS: ColumnElement[Any] = cast(null(), UTCDateTime())
_NULL_TXT: ColumnElement[Any] = cast(null(), c.c.channels.type)
_NULL_INT: ColumnElement[Any] = cast(null(), c.c.id.type)


# Every fact for (phones, sender) at or before :at, tagged by kind.
def _branches(match: Callable[[Any], ColumnElement[bool]]) -> tuple[Select[Any], ...]:
    return (
        select(
            literal("c").label("kind"), c.c.phone, c.c.id, c.c.channels, c.c.category, c.c.status,
            c.c.evidence_captured_at.label("t1"), c.c.created_at.label("t2"),
            c.c.activated_at.label("t3"), c.c.expires_at.label("t4"), c.c.pending_until.label("t5"),
        ).where(and_(match(c.c.phone), c.c.sender_id == bindparam("sender"))),
        select(
            literal("o"), o.c.phone, _NULL_INT, o.c.channels, _NULL_TXT, _NULL_TXT,
            o.c.received_at, o.c.created_at, _NULL_TS, _NULL_TS, _NULL_TS,
        ).where(
            and_(
                match(o.c.phone),
                o.c.sender_id == bindparam("sender"),
                o.c.withdrawn_at.is_(None),
            )
        ),
        select(
            literal("s"), s.c.phone, _NULL_INT, s.c.blocked_categories, s.c.quiet_hours,
            case(
                (and_(s.c.dnd_voice, s.c.dnd_sms), "sms,voice"),
                (s.c.dnd_voice, "voice"),
                (s.c.dnd_sms, "sms"),
                else_="",
            ),
            s.c.updated_at, _NULL_TS, _NULL_TS, _NULL_TS, _NULL_TS,
        ).where(match(s.c.phone)),
        select(
            literal("d"), d.c.phone, _NULL_INT, _NULL_TXT, _NULL_TXT, _NULL_TXT,
            func.max(d.c.disconnected_at), _NULL_TS, _NULL_TS, _NULL_TS, _NULL_TS,
        )
        .where(
            and_(
                match(d.c.phone),
                d.c.disconnected_at <= bindparam("at", type_=UTCDateTime()),
                d.c.retracted_at.is_(None),  # a retracted disconnection no longer counts
            )
        )
        .group_by(d.c.phone),
    )  # fmt: skip


_BY_PHONES = _branches(lambda col: col.in_(_phones))
_BY_ARRAY = _branches(lambda col: col == any_(bindparam("phones", type_=ARRAY(String))))
_BY_PHONE = _branches(lambda col: col == bindparam("phone"))
# One round trip: the facts, for a list of numbers (batches) or for one.
_FACTS = union_all(*_BY_PHONES)
_FACTS_PG = union_all(*_BY_ARRAY)
_FACTS_ONE = Prepared(union_all(*_BY_PHONE))
# The facts, and the key, sender and delegation rows the request took from this
# process's copies, as fingerprints read in the same statement (so from the same
# snapshot): a copy is used only while it matches the database (see ``Directory``).
_NULLS = (
    _NULL_INT,
    _NULL_TXT,
    _NULL_TXT,
    _NULL_TXT,
    _NULL_TS,
    _NULL_TS,
    _NULL_TS,
    _NULL_TS,
    _NULL_TS,
)
_VERIFY = (
    KEY_NOW.with_only_columns(literal("k"), KEY_FINGERPRINT, *_NULLS),
    SENDER_NOW.with_only_columns(literal("x"), SENDER_FINGERPRINT, *_NULLS),
    GRANTS_NOW.with_only_columns(literal("g"), DELEGATION_FINGERPRINT, *_NULLS),
)
_FACTS_VERIFIED = union_all(*_BY_PHONES, *_VERIFY)
_FACTS_PG_VERIFIED = union_all(*_BY_ARRAY, *_VERIFY)
_FACTS_ONE_VERIFIED = Prepared(union_all(*_BY_PHONE, *_VERIFY))


@dataclass(frozen=True, slots=True)
class Directory:
    """The key and sender a check took from per-process copies, to verify with its facts."""

    key_prefix: str
    key_fingerprint: str
    agent_id: int | None
    sender_fingerprint: tuple[str, ...]

    def verify(self, seen: dict[str, list[str]]) -> None:
        """Raise StaleDirectory unless the database still holds exactly these rows."""
        if seen.get("k") != [self.key_fingerprint] or (
            seen.get("x", []) + sorted(seen.get("g", []))
        ) != list(self.sender_fingerprint):
            raise StaleDirectory


def _split(text: str | None) -> frozenset[str]:
    return frozenset(text.split(",")) if text else frozenset()


def _quiet(text: str | None) -> tuple[time, time] | None:
    if not text:
        return None
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def load_facts(
    session: Session,
    sender: SenderRef,
    phone_list: Sequence[str],
    at: datetime,
    directory: Directory | None = None,
) -> dict[str, Facts]:
    """Return the facts for each phone about ``sender`` at ``at``: one query per chunk.

    With ``directory``, the first query also verifies the per-process copies the
    request used, and StaleDirectory is raised when they are out of date.
    """
    seen: dict[str, list[str]] = {}
    consents: dict[str, list[ConsentFact]] = {}
    optouts: dict[str, list[OptOutFact]] = {}
    prefs: dict[str, Preferences] = {}
    cut: dict[str, datetime] = {}
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    step = PG_CHUNK if pg else CHUNK
    # With a directory to verify, the first query runs even for no phones at all.
    for start in range(0, max(len(phone_list), directory is not None), step):
        params: dict[str, Any] = {"sender": sender.id, "at": at}
        if directory is not None and start == 0:
            params["prefix"] = directory.key_prefix
            params["agent"] = directory.agent_id
        rows: Sequence[Any]
        if len(phone_list) == 1:  # the single check: a precompiled statement
            params["phone"] = phone_list[0]
            rows = (_FACTS_ONE_VERIFIED if directory is not None else _FACTS_ONE).rows(conn, params)
        else:
            params["phones"] = list(phone_list[start : start + step])
            verify = directory is not None and start == 0
            if pg:
                query = _FACTS_PG_VERIFIED if verify else _FACTS_PG
            else:
                query = _FACTS_VERIFIED if verify else _FACTS
            rows = conn.execute(query, params).all()
        for kind, phone, id_, chan, cat, status, t1, t2, t3, t4, t5 in rows:
            if kind == "c":
                consents.setdefault(phone, []).append(
                    ConsentFact(id_, _split(chan), status, t1, t2, cat, t3, t4, t5)
                )
            elif kind == "o":
                optouts.setdefault(phone, []).append(OptOutFact(_split(chan), t1, t2))
            elif kind == "s":
                prefs[phone] = Preferences(t1, _split(status), _split(chan), _quiet(cat))
            elif kind == "d":
                if t1 is not None:
                    cut[phone] = t1
            else:
                seen.setdefault(kind, []).append(phone)
    if directory is not None:
        directory.verify(seen)
    empty = Facts(sender_suspended=sender.suspended)
    result = {}
    for phone in phone_list:
        if phone in consents or phone in optouts or phone in prefs or phone in cut:
            result[phone] = Facts(
                sender.suspended,
                tuple(consents.get(phone, ())),
                tuple(optouts.get(phone, ())),
                prefs.get(phone),
                cut.get(phone),
            )
        else:
            result[phone] = empty
    return result


def policy_of(settings: Settings) -> Policy:
    """Return the decision policy the settings describe."""
    return Policy(settings.policy, settings.calling_hours, settings.tz)


_ZONES: dict[str, ZoneInfo] = {}


def zone_for(phone: str, settings: Settings) -> ZoneInfo:
    """Return the number's local zone (SPEC §3 step 8)."""
    name = phones.time_zone_of(phone) or settings.timezone
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What a caller asks: may this sender contact these numbers this way at this time?"""

    sender: SenderRef
    channel: str
    purpose: str
    category: str
    at: datetime
    directory: Directory | None = None  # per-process copies to verify with the facts


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One answered check, logged, with its signed receipt id."""

    phone: str
    decision: Decision
    check_id: str
    checked_at: datetime


def receipt_signer(settings: Settings) -> Signer:
    """Return the signer for check receipts."""
    return Signer(settings.secret_key, "receipt")


_LOG = insert(CheckLog.__table__)  # type: ignore[attr-defined]
_LOG_RETURNING = _LOG.returning(CheckLog.__table__.c.id)  # type: ignore[attr-defined]


def _log_row(req: CheckRequest, phone: str, dec: Decision, now: datetime) -> dict[str, Any]:
    return {
        "phone": phone,
        "sender_id": req.sender.id,
        "organization_id": req.sender.organization_id,
        "agent_id": req.sender.agent_id,
        "channel": req.channel,
        "purpose": req.purpose,
        "category": req.category,
        "decision": dec.decision,
        "reason": dec.reason,
        "consent_id": dec.consent_id,
        "at": req.at,
        "checked_at": now,
    }


# The PostgreSQL types of _LOG_COLUMNS, as binary COPY needs them exactly.
_LOG_PG_TYPES = [
    "varchar", "int4", "int4", "int4", "varchar", "varchar", "varchar", "varchar", "varchar",
    "int8", "timestamp", "timestamp", "int8",
]  # fmt: skip
_LOG_COLUMNS = (
    "phone", "sender_id", "organization_id", "agent_id", "channel", "purpose", "category",
    "decision", "reason", "consent_id", "at", "checked_at", "batch_id",
)  # fmt: skip


def _log_many(
    session: Session,
    req: CheckRequest,
    decisions: dict[str, Decision],
    now: datetime,
    batch_id: int,
) -> None:
    """Write a batch's check-log rows with the driver's bulk path.

    Ten thousand rows through SQLAlchemy's per-row parameter processing cost
    more than deciding them; here the rows are plain tuples (times as naive
    UTC, as UTCDateTime stores them), sent with COPY on PostgreSQL and one
    executemany on SQLite.
    """
    conn = session.connection()
    # The two times once, exactly as UTCDateTime stores them on this database
    # (on SQLite a fixed-width text; the driver's own adapter would drop zero
    # microseconds and cost a call per row).
    to_db = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
    at, checked = (to_db(req.at), to_db(now)) if to_db else (req.at, now)
    s = req.sender
    fixed = (s.id, s.organization_id, s.agent_id, req.channel, req.purpose, req.category)
    rows = [
        (phone, *fixed, d.decision, d.reason, d.consent_id, at, checked, batch_id)
        for phone, d in decisions.items()
    ]
    columns = ", ".join(_LOG_COLUMNS)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # Binary COPY: no text to format here or to parse in the server.
        with cursor.copy(f"COPY check_log ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_LOG_PG_TYPES)
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(_LOG_COLUMNS))
        # Fixed column names; the values are bound.
        conn.exec_driver_sql(f"INSERT INTO check_log ({columns}) VALUES ({marks})", rows)  # noqa: S608  # nosec B608


def check_one(
    session: Session,
    settings: Settings,
    req: CheckRequest,
    phone: str,
    read: Session | None = None,
    gate: ColdGate | None = None,
) -> CheckResult:
    """Decide one check (facts from ``read``, a standby, if given), log it, sign its receipt.

    ``gate`` is asked first when the sender has no record with the number.
    """
    # The receipt names the registry state it rests on: a feed number read before
    # the facts, from the same database, so every change up to it was in this
    # decision's view and a regulator can replay it. Cached per process and
    # database for 50 ms (events/sealing.py): a query per check would cost more.
    state = known_seq(read or session)
    facts = load_facts(read or session, req.sender, [phone], req.at, req.directory)[phone]
    if gate is not None and cold(facts, req.channel, req.at):
        gate(1)
    dec = decide(
        facts,
        channel=req.channel,
        purpose=req.purpose,
        category=req.category,
        at=req.at,
        policy=policy_of(settings),
        zone=zone_for(phone, settings),
    )
    now = utcnow()
    log_id: int = (
        session.connection().execute(_LOG_RETURNING, _log_row(req, phone, dec, now)).scalar_one()
    )
    receipt = {
        "i": log_id,
        "p": phone,
        "s": req.sender.code,
        "c": req.channel,
        "u": req.purpose,
        "d": dec.decision,
        "r": dec.reason,
        "t": iso(now),
        "q": state,
    }
    if req.sender.agent_slug is not None:
        receipt["a"], receipt["o"] = req.sender.agent_slug, req.sender.org_slug
    return CheckResult(phone, dec, receipt_signer(settings).dumps(receipt), now)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One entry of a batch: the input, and either the phone and decision or an error."""

    input: Any
    phone: str | None = None
    decision: Decision | None = None
    error: InvalidPhoneError | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A batch's results in input order, its counts, and its receipt id."""

    items: list[BatchItem]
    allowed: int
    denied: int
    invalid: int
    check_id: str


def normalize_many(
    inputs: Iterable[Any], region: str
) -> list[tuple[Any, str | None, InvalidPhoneError | None]]:
    """Parse every input; an invalid one carries its error instead of failing the rest."""
    out: list[tuple[Any, str | None, InvalidPhoneError | None]] = []
    for raw in inputs:
        try:
            out.append((raw, phones.to_e164(raw, region), None))
        except phones.InvalidPhone as exc:
            out.append((raw, None, InvalidPhoneError(str(exc))))
    return out


def decide_many(
    session: Session, settings: Settings, req: CheckRequest, phone_list: Sequence[str]
) -> dict[str, Decision]:
    """Decide for many distinct phones at once (batch, scrub); ``session`` only reads."""
    return decide_all(
        settings, req, load_facts(session, req.sender, phone_list, req.at, req.directory)
    )


def cold(facts: Facts, channel: str, at: datetime) -> bool:
    """Tell whether the sender has no record with this number on ``channel`` (SPEC §8, last line).

    Checks on such numbers are what mining the registry looks like; they have
    their own, lower rate limit (``REGISTRY_RATELIMIT_COLD_CHECK``). A record
    makes the number "warm" only for this sender and this channel, and only if
    it speaks for the number's current holder (made after its latest
    disconnection): an opt-out, or a consent the holder confirmed at some time
    or that is still waiting for confirmation. A voice consent says nothing
    about texting, and a claim the holder let lapse unconfirmed is no
    relationship (it cost the sender a text, limited per number, not a check).
    """
    cut = facts.disconnected_at

    def counts(*times: datetime) -> bool:
        return cut is None or all(t > cut for t in times)

    for o in facts.optouts:
        if channel in o.channels and counts(o.received_at, o.recorded_at):
            return False
    for c in facts.consents:
        if channel not in c.channels or not counts(c.given_at, c.recorded_at):
            continue
        if c.activated_at is not None:
            return False
        if c.status == "pending" and (c.pending_until is None or c.pending_until > at):
            return False
    return True


# Called with the number of cold checks a request is about to answer; raises to refuse.
ColdGate = Callable[[int], None]


def decide_all(
    settings: Settings, req: CheckRequest, facts: dict[str, Facts]
) -> dict[str, Decision]:
    """Decide every (phone, facts) pair of a request.

    Numbers of which the registry knows nothing (most of a scrubbed list) share
    one ``Facts`` object (``load_facts``); ``decide`` is a pure function, so
    their answer is computed once per time zone and shared.
    """
    policy = policy_of(settings)
    blank: dict[ZoneInfo, Decision] = {}
    out: dict[str, Decision] = {}
    for p, f in facts.items():
        zone = zone_for(p, settings)
        known = f.consents or f.optouts or f.preferences or f.disconnected_at
        if not known and zone in blank:
            out[p] = blank[zone]
            continue
        out[p] = decide(
            f,
            channel=req.channel,
            purpose=req.purpose,
            category=req.category,
            at=req.at,
            policy=policy,
            zone=zone,
        )
        if not known:
            blank[zone] = out[p]
    return out


def log_batch(
    session: Session,
    req: CheckRequest,
    decisions: dict[str, Decision],
    now: datetime,
    counts: tuple[int, int, int, int] | None = None,
) -> int:
    """Log a batch of answered checks (one ``check_batch`` row, a log row per number); return its id.

    ``counts`` is (size, allowed, denied, invalid) of the request; by default
    the decisions' own. What a holder sees under "who checked my number" is
    these rows, whichever endpoint answered (``/check/batch``, ``/sync/compare``).
    """
    if counts is None:
        allowed = sum(1 for d in decisions.values() if d.allowed)
        counts = (len(decisions), allowed, len(decisions) - allowed, 0)
    size, allowed, denied, invalid = counts
    batch_id: int = session.execute(
        insert(CheckBatch.__table__).returning(CheckBatch.__table__.c.id),  # type: ignore[attr-defined]
        {
            "organization_id": req.sender.organization_id,
            "agent_id": req.sender.agent_id,
            "sender_id": req.sender.id,
            "channel": req.channel,
            "purpose": req.purpose,
            "category": req.category,
            "size": size,
            "allowed": allowed,
            "denied": denied,
            "invalid": invalid,
            "checked_at": now,
        },
    ).scalar_one()
    if decisions:
        _log_many(session, req, decisions, now, batch_id)
    return batch_id


def check_batch(
    session: Session,
    settings: Settings,
    req: CheckRequest,
    inputs: Sequence[Any],
    read: Session | None = None,
    gate: ColdGate | None = None,
) -> BatchResult:
    """Answer a batch: every number decided and logged, invalid entries reported in place."""
    if len(inputs) > settings.max_batch:
        raise TooLarge(f"a batch holds at most {settings.max_batch} numbers", field="phones")
    parsed = normalize_many(inputs, settings.default_region)
    state = known_seq(read or session)  # as in check_one: the registry state the answers rest on
    distinct = list(dict.fromkeys(p for _, p, _ in parsed if p is not None))
    facts = load_facts(read or session, req.sender, distinct, req.at, req.directory)
    if gate is not None:
        gate(sum(1 for f in facts.values() if cold(f, req.channel, req.at)))
    decisions = decide_all(settings, req, facts)
    now = utcnow()
    items = [
        BatchItem(raw, p, decisions[p]) if p is not None else BatchItem(raw, error=err)
        for raw, p, err in parsed
    ]
    allowed = sum(1 for i in items if i.decision is not None and i.decision.allowed)
    invalid = sum(1 for i in items if i.error is not None)
    denied = len(items) - allowed - invalid
    batch_id = log_batch(session, req, decisions, now, (len(items), allowed, denied, invalid))
    receipt = {
        "b": batch_id,
        "s": req.sender.code,
        "c": req.channel,
        "u": req.purpose,
        "t": iso(now),
        "q": state,
    }
    return BatchResult(items, allowed, denied, invalid, receipt_signer(settings).dumps(receipt))


def read_receipt(session: Session, settings: Settings, check_id: str) -> dict[str, Any]:
    """Return the verified content of a receipt; raise InvalidToken for a forged id."""
    payload = receipt_signer(settings).loads(check_id)
    if not isinstance(payload, dict):
        raise NotFound("no such receipt")
    attribution = {"agent": payload["a"], "on_behalf_of": payload["o"]} if "a" in payload else {}
    if "b" not in payload:
        return attribution | {
            "check_id": check_id,
            "phone": payload["p"],
            "sender": payload["s"],
            "channel": payload["c"],
            "purpose": payload.get("u"),
            "decision": payload["d"],
            "reason": payload["r"],
            "checked_at": payload["t"],
            # The feed number the decision saw (absent on receipts signed before it existed).
            "registry_seq": payload.get("q"),
        }
    log = CheckLog.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(log.c.phone, log.c.decision, log.c.reason)
        .where(log.c.batch_id == payload["b"])
        .order_by(log.c.id)
    ).all()
    return attribution | {
        "check_id": check_id,
        "sender": payload["s"],
        "channel": payload["c"],
        "purpose": payload.get("u"),
        "checked_at": payload["t"],
        "registry_seq": payload.get("q"),
        "results": [{"phone": p, "decision": dec, "reason": r} for p, dec, r in rows],
    }


def checks_for_phone(session: Session, phone: str, limit: int = 200) -> list[dict[str, Any]]:
    """Return who checked this number, newest first: sender, its organization, and any agent."""
    from sqlalchemy.orm import aliased

    from registry.orgs.models import Organization

    log = CheckLog.__table__  # type: ignore[attr-defined]
    owner, agent = aliased(Organization), aliased(Organization)
    rows = session.execute(
        select(
            log.c.checked_at,
            log.c.channel,
            log.c.purpose,
            log.c.decision,
            log.c.reason,
            col(Sender.code).label("sender_code"),
            col(Sender.name).label("sender_name"),
            col(owner.name).label("organization"),
            col(agent.name).label("agent"),
        )
        .join(Sender, col(Sender.id) == log.c.sender_id)
        .join(owner, col(owner.id) == log.c.organization_id)
        .outerjoin(agent, col(agent.id) == log.c.agent_id)
        .where(log.c.phone == phone)
        .order_by(log.c.checked_at.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def sender_owner(session: Session, code: str) -> int:
    """Return the id of the organization that owns sender ``code``."""
    from registry.errors import UnknownSender

    owner = session.scalar(select(col(Sender.organization_id)).where(col(Sender.code) == code))
    if owner is None:
        raise UnknownSender(f"no sender with code {code!r}", field="sender")
    return int(owner)
