"""The facts of a check: every record about (numbers, sender) at or before a time, in one query.

One ``UNION ALL`` of a select per kind of record (consents, opt-outs, the
holder's preferences, the latest disconnection), and, for a request that took
its key and sender from per-process copies, the fingerprints that verify them
(registry/copies.py). A UNION has one set of columns, so each branch fills the
same neutral slots (``id``, ``text1..3``, ``time1..5``) and each kind has a
named decoder below that says which slot holds what. Core statements and plain
rows: building ORM objects would cost more than the rest of a check (STYLE.md,
habit 5).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    LABEL_STYLE_NONE,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Join

from registry.checks.models import FactChange
from registry.consent.models import Consent, OptOut
from registry.copies import VERIFY, Copies
from registry.database.statements import Direct, Prepared, table_of
from registry.decision import ConsentFact, Facts, FrequencyCap, OptOutFact, Preferences
from registry.numbers.models import Disconnection
from registry.senders.models import SenderAddress
from registry.senders.services import SenderRef
from registry.subscribers.models import CapExemption, Subscriber, parse_caps, parse_ends
from registry.timeutil import UTCDateTime, utcnow

# Every branch of a batch's fact query takes the chunk's numbers as one
# parameter: on SQLite a JSON array read by ``json_each`` (no placeholder per
# number for SQLAlchemy to expand and the driver to bind: that expansion cost
# more than the query), on PostgreSQL an array (``unnest``). A SQLite chunk
# stays small enough to keep the statement's working set in cache; on
# PostgreSQL a whole batch is one query.
CHUNK = 2_000
PG_CHUNK = 10_000

consent, optout = table_of(Consent), table_of(OptOut)
subscriber, disconnection = table_of(Subscriber), table_of(Disconnection)
sender_address = table_of(SenderAddress)
exemption = table_of(CapExemption)
# A slot a branch leaves empty. Plain NULL, not cast: a UNION takes its column
# types from its branches' other values (the consent branch fills every slot),
# and the single check's statement stays under psycopg's 4,096-byte query
# cache (it re-parsed longer statements on every execute: 647k instructions
# against 182k).
_EMPTY: ColumnElement[Any] = literal_column("NULL")  # null() would get an "AS anon_1" label
TEXTS, TIMES = 5, 5


def _row(
    kind: str,
    key: ColumnElement[Any],
    record_id: ColumnElement[Any] = _EMPTY,
    texts: Sequence[ColumnElement[Any]] = (),
    times: Sequence[ColumnElement[Any]] = (),
) -> list[ColumnElement[Any]]:
    """Return one branch's columns: its kind, its number (NULL when it verifies a copy), the slots.

    Only the first branch (the consents') names its columns: a UNION takes its
    names from it, and the others' labels only lengthened the statement (it
    must stay under psycopg's 4,096-byte query cache, see ``_EMPTY``).
    """
    texts = [*texts, *[_EMPTY] * (TEXTS - len(texts))]
    times = [*times, *[_EMPTY] * (TIMES - len(times))]
    # Inlined, not bound: fewer parameters on every check.
    columns = [literal_column(f"'{kind}'", String), key, record_id, *texts, *times]
    if kind != "consent":
        return columns
    names = ["kind", "phone", "id", *(f"text{i}" for i in range(1, TEXTS + 1))]
    names += [f"time{i}" for i in range(1, TIMES + 1)]
    return [c.label(n) for c, n in zip(columns, names, strict=True)]


def _branches(match: Callable[[Any], ColumnElement[bool]]) -> tuple[Select[Any], ...]:
    """Return the selects of every fact for the numbers ``match`` picks, about ``:sender``."""
    dnd = case(
        (and_(subscriber.c.dnd_voice, subscriber.c.dnd_sms), "sms,voice"),
        (subscriber.c.dnd_voice, "voice"),
        (subscriber.c.dnd_sms, "sms"),
        else_="",
    )
    at = bindparam("at", type_=UTCDateTime())
    # When the holder exempted this sender from their cap; read only for holders with a cap.
    exempt = case(
        (
            subscriber.c.frequency_caps.is_not(None),
            select(exemption.c.created_at)
            .where(
                exemption.c.phone == subscriber.c.phone,
                exemption.c.sender_id == bindparam("sender"),
            )
            .scalar_subquery(),
        ),
        else_=null(),
    )
    given = consent.c
    refused = optout.c
    holder = subscriber.c
    cut = disconnection.c
    return (
        select(
            *_row("consent", given.phone, given.id, (given.channels, given.category, given.status), (
                given.evidence_captured_at, given.created_at, given.activated_at,
                given.expires_at, given.pending_until,
            ))
        ).where(and_(match(given.phone), given.sender_id == bindparam("sender"))),
        select(
            *_row("optout", refused.phone, texts=(refused.channels,),
                  times=(refused.received_at, refused.created_at, refused.expires_at))
        ).where(
            and_(match(refused.phone), refused.sender_id == bindparam("sender"),
                 refused.withdrawn_at.is_(None))
        ),
        select(
            *_row("subscriber", holder.phone,
                  texts=(dnd, holder.blocked_categories, holder.quiet_hours,
                         holder.frequency_caps, holder.refusal_ends),
                  times=(holder.updated_at, exempt))
        ).where(match(holder.phone)),
        select(*_row("disconnection", cut.phone, times=(func.max(cut.disconnected_at),)))
        .where(
            and_(
                match(cut.phone),
                cut.disconnected_at <= at,
                cut.retracted_at.is_(None),  # a retracted disconnection no longer counts
            )
        )
        .group_by(cut.phone),
    )  # fmt: skip


def _union(first: Select[Any], *rest: Select[Any]) -> CompoundSelect[Any]:
    """Return the branches as one UNION ALL, the later ones without column labels (``_row``)."""
    return union_all(first, *(branch.set_label_style(LABEL_STYLE_NONE) for branch in rest))


# The calling address a check names (``from``), if ``:sender`` holds it: the
# carrier connecting it, how and when it was attested, withdrawn, suspended.
# One more branch of the same statement, by the unique index on the address,
# only in the statements of checks that name one: no query is added per check.
# Short: the alias and the unlabelled columns (a UNION takes its names from its
# first branch) keep the single check's statement with copies and ``from``
# under psycopg's 4,096-byte query cache (see _EMPTY).
_a = sender_address.alias("a")
_ADDRESS = select(
    *_row(
        "address",
        _a.c.address,
        _a.c.carrier_id,
        texts=(_a.c.attested_via,),
        times=(_a.c.attested_at, _a.c.withdrawn_at, _a.c.suspended_until),
    )
).where(and_(_a.c.address == bindparam("from"), _a.c.sender_id == bindparam("sender")))
# The fingerprints of the copies a request used, in the same layout (registry/copies.py).
_VERIFY = tuple(
    select_.with_only_columns(*_row(kind, _EMPTY, texts=(select_.selected_columns[0],)))
    for kind, select_ in VERIFY.items()
)
_BY_PHONES = _branches(lambda column: column.in_(bindparam("phones", expanding=True)))
# SQLite: the numbers as one JSON array (``json_each``), a list given as its JSON text.
_listed = func.json_each(bindparam("phones", type_=String)).table_valued("value")
_BY_JSON = _branches(lambda column: column.in_(select(_listed.c.value)))
# PostgreSQL: the numbers as one JSON array too, read as a set (``IN (SELECT
# json_array_elements_text(...))``). Not ``= ANY(array)``: for that the planner
# estimates each of the array's elements against the column's statistics, in
# every branch: 16 to 110 ms of planning for a batch of 10,000, against 0.5 ms
# for a set (EXPLAIN ANALYZE, docs/performance.md). Not an array parameter
# read by ``unnest``: psycopg encodes an array element by element in Python
# (about 1 µs a number), ``json.dumps`` the whole list at once.
_elements = func.json_array_elements_text(cast(bindparam("phones", type_=String), JSON))
_BY_ARRAY = _branches(lambda column: column.in_(select(_elements)))
_BY_PHONE = _branches(lambda column: column == bindparam("phone"))
# One round trip: the facts for a list of numbers (batches), or for one (a
# precompiled statement: the single check), with or without the copies' check.
FACTS: CompoundSelect[Any] = _union(*_BY_PHONES)


def _with(branches: tuple[Select[Any], ...], verify: bool, address: bool) -> CompoundSelect[Any]:
    return _union(*branches, *(_VERIFY if verify else ()), *((_ADDRESS,) if address else ()))


# By (verify the copies, name a calling address) and dialect.
_QUERIES: dict[tuple[bool, bool, str], CompoundSelect[Any]] = {
    (verify, address, dialect): _with(branches, verify, address)
    for verify in (False, True)
    for address in (False, True)
    for dialect, branches in (("sqlite", _BY_JSON), ("postgresql", _BY_ARRAY))
}
_ONE = {
    (verify, address): Prepared(_with(_BY_PHONE, verify, address))
    for verify in (False, True)
    for address in (False, True)
}


_SINCE = bindparam("since", type_=UTCDateTime())
_change = table_of(FactChange).c


def _changed_since(key: ColumnElement[Any]) -> Select[Any]:
    """Return the select of the changes of ``key``'s facts recorded at ``:since`` or later.

    One range probe of ``fact_change``'s primary key (phone, changed_at); the
    table holds only the last hour or so of changes (``prune_fact_changes``).
    """
    return select(_change.phone).where(and_(_change.phone == key, _change.changed_at >= _SINCE))


# True while the number ``:phone`` has no change of its facts recorded at
# ``:since`` or later: the condition of a check's log row when its facts came
# from a standby that may lack commits from ``:since`` on (checks/services.py).
# Any change counts (a refusal, and also what allows more): over-marking only
# sends a check to the primary. With a calling address (``from``), its own
# changes (an attestation withdrawn, a suspension) count as well.
NO_RECENT_CHANGE: ColumnElement[bool] = ~_changed_since(bindparam("phone")).exists()
NO_RECENT_CHANGE_FROM: ColumnElement[bool] = and_(
    NO_RECENT_CHANGE, ~_changed_since(bindparam("from")).exists()
)
# The numbers of ``:phones`` (and the address ``:from``) with such a change (a batch).
_CHANGED = select(_change.phone).where(
    and_(
        _change.phone == any_(bindparam("phones", type_=ARRAY(String))),
        _change.changed_at >= _SINCE,
    )
)


def recent_changes(
    session: Session,
    sender: SenderRef,
    phone_list: Sequence[str],
    since: datetime,
    copies: Copies | None = None,
    caller: str | None = None,
) -> set[str]:
    """Return the numbers (and ``caller``) whose facts changed at ``since`` or later (PostgreSQL, the primary).

    With ``copies``, the same statement verifies them (StaleCopy when out of date).
    """
    branches = [_CHANGED.with_only_columns(*_row("change", _change.phone))]
    keys = [*phone_list, *((caller,) if caller is not None else ())]
    params: dict[str, Any] = {"since": since, "phones": keys}
    if copies is not None:
        branches.extend(_VERIFY)
        params |= copies.params() | {"sender": sender.id}
    got = _Gathered()
    found: set[str] = set()
    for row in session.execute(union_all(*branches), params).all():
        if row[0] == "change":
            found.add(row[1])
        else:
            _fingerprint(got, row)
    if copies is not None:
        seen = got.fingerprints
        copies.verify(seen.get("key", []), seen.get("sender", []), seen.get("grant", []))
    return found


def prune_fact_changes(session: Session, before: datetime) -> int:
    """Delete the fact changes recorded before ``before`` (no standby's window reaches them)."""
    deleted = session.execute(delete(table_of(FactChange)).where(_change.changed_at < before))
    return int(getattr(deleted, "rowcount", 0) or 0)


@lru_cache(maxsize=1024)
def _split(text: str | None) -> frozenset[str]:
    """Return a comma-separated set of names (channels, categories): few distinct, so cached."""
    return frozenset(text.split(",")) if text else frozenset()


def _quiet(text: str | None) -> tuple[time, time] | None:
    if not text:
        return None
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


@dataclass(slots=True)
class _Gathered:
    """The rows of one request, decoded, by number (and the copies' fingerprints)."""

    consents: dict[str, list[ConsentFact]] = field(default_factory=dict)
    optouts: dict[str, list[OptOutFact]] = field(default_factory=dict)
    preferences: dict[str, Preferences] = field(default_factory=dict)
    caps: dict[str, FrequencyCap] = field(default_factory=dict)
    disconnected: dict[str, datetime] = field(default_factory=dict)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    address: CallerAddress | None = None


@dataclass(frozen=True, slots=True)
class CallerAddress:
    """The calling address a check named, as the sender holds it (absent: not the sender's)."""

    address: str
    carrier_id: int | None
    attested_via: str | None
    attested_at: datetime | None
    withdrawn_at: datetime | None
    suspended_until: datetime | None

    def usable(self) -> bool:
        """Tell whether the address is attested and its attestation not withdrawn."""
        return self.attested_at is not None and self.withdrawn_at is None

    def suspended(self, now: datetime) -> bool:
        """Tell whether the address itself is suspended at ``now`` (issue 17)."""
        return self.suspended_until is not None and self.suspended_until > now


Row = Sequence[Any]  # kind, phone, id, text1 .. text5, time1 .. time5


def _consent(got: _Gathered, row: Row) -> None:
    # text: channels, category, status; time: given, recorded, activated, expires, pending until
    (
        _,
        phone,
        id_,
        channels,
        category,
        status,
        _,
        _,
        given,
        recorded,
        activated,
        expires,
        pending,
    ) = row
    got.consents.setdefault(phone, []).append(
        ConsentFact(
            id_, _split(channels), status, given, recorded, category, activated, expires, pending
        )
    )


def _optout(got: _Gathered, row: Row) -> None:
    # text: channels; time: received, recorded, expires
    phone, channels, received, recorded, expires = row[1], row[3], row[8], row[9], row[10]
    got.optouts.setdefault(phone, []).append(
        OptOutFact(_split(channels), received, recorded, expires)
    )


def _subscriber(got: _Gathered, row: Row) -> None:
    # text: do-not-disturb channels, blocked categories, quiet hours, cap, refusal ends;
    # time: set at, this sender exempted from the cap at
    phone, dnd, blocked, quiet, caps, ends, set_at, exempt = (*row[1:2], *row[3:8], *row[8:10])
    got.preferences[phone] = Preferences(
        set_at, _split(dnd), _split(blocked), _quiet(quiet), parse_ends(ends)
    )
    if caps:
        got.caps[phone] = FrequencyCap(set_at, parse_caps(caps), exempt)


def _disconnection(got: _Gathered, row: Row) -> None:
    # time: the latest disconnection at or before the check's time
    if row[8] is not None:
        got.disconnected[row[1]] = row[8]


def _address(got: _Gathered, row: Row) -> None:
    # id: the carrier; text: how attested; time: attested, withdrawn, suspended until
    t = 3 + TEXTS  # the first time slot
    got.address = CallerAddress(row[1], row[2], row[3], row[t], row[t + 1], row[t + 2])


def _fingerprint(got: _Gathered, row: Row) -> None:
    # text: the fingerprint of a key, sender or grant row as the database holds it now
    got.fingerprints.setdefault(row[0], []).append(row[3])


_DECODERS: dict[str, Callable[[_Gathered, Row], None]] = {
    "consent": _consent,
    "optout": _optout,
    "subscriber": _subscriber,
    "disconnection": _disconnection,
    "address": _address,
    **dict.fromkeys(VERIFY, _fingerprint),
}


def load_facts(
    session: Session,
    sender: SenderRef,
    phone_list: Sequence[str],
    at: datetime,
    copies: Copies | None = None,
) -> dict[str, Facts]:
    """Return the facts for each phone about ``sender`` at ``at``: one query per chunk.

    With ``copies``, the first query also verifies the per-process copies the
    request used, and StaleCopy is raised when they are out of date.
    """
    return load_checked(session, sender, phone_list, at, copies)[0]


def load_checked(
    session: Session | Direct,
    sender: SenderRef,
    phone_list: Sequence[str],
    at: datetime,
    copies: Copies | None = None,
    caller: str | None = None,
) -> tuple[dict[str, Facts], CallerAddress | None]:
    """Return ``load_facts``'s facts, with the calling address ``caller`` as the sender holds it.

    The address is read by the first query, once for the whole request: every
    number of a batch is judged on the same attestation (one snapshot), and a
    withdrawal is seen from the next request on. When ``caller`` is not an
    attested, live address of the sender, every answer's facts say so
    (``caller_unregistered``); when the address is suspended, the sender is
    (``sender_suspended``).
    """
    got = _Gathered()
    conn: Any = session if isinstance(session, Direct) else session.connection()
    dialect = conn.dialect.name
    step = PG_CHUNK if dialect == "postgresql" else CHUNK
    # With copies to verify or an address to read, the first query runs even for no phones.
    first_only = copies is not None or caller is not None
    for start in range(0, max(len(phone_list), first_only), step):
        verify = copies is not None and start == 0
        address = caller is not None and start == 0
        params: dict[str, Any] = {"sender": sender.id, "at": at}
        if verify and copies is not None:
            params |= copies.params()
        if address:
            params["from"] = caller
        rows: Sequence[Row]
        if len(phone_list) == 1:
            params["phone"] = phone_list[0]
            rows = _ONE[verify, address].rows(conn, params)
        else:
            chunk = list(phone_list[start : start + step])
            params["phones"] = json.dumps(chunk)
            rows = conn.execute(_QUERIES[verify, address, dialect], params).all()
        for row in rows:
            _DECODERS[row[0]](got, row)
    if copies is not None:
        seen = got.fingerprints
        copies.verify(seen.get("key", []), seen.get("sender", []), seen.get("grant", []))
    suspended, unregistered = sender.suspended, False
    if caller is not None:
        held = got.address
        unregistered = held is None or not held.usable()
        suspended = suspended or (held is not None and held.suspended(utcnow()))
    empty = Facts(sender_suspended=suspended, caller_unregistered=unregistered)
    result = {}
    for phone in phone_list:
        if (
            phone in got.consents
            or phone in got.optouts
            or phone in got.preferences
            or phone in got.disconnected
        ):
            result[phone] = Facts(
                suspended,
                tuple(got.consents.get(phone, ())),
                tuple(got.optouts.get(phone, ())),
                got.preferences.get(phone),
                got.disconnected.get(phone),
                caller_unregistered=unregistered,
                cap=got.caps.get(phone),
            )
        else:
            result[phone] = empty
    return result, got.address


class _ListFirst(Join):
    """A join of the list of numbers to a table that SQLite runs with the list outermost."""

    inherit_cache = True


@compiles(_ListFirst, "sqlite")
def _cross_join(element: _ListFirst, compiler: Any, **kw: Any) -> str:
    # SQLite keeps the order of the two sides of a CROSS JOIN (and only of those).
    text: str = compiler.visit_join(element, **kw)
    return text.replace(" JOIN ", " CROSS JOIN ", 1)


def _joined(listed: Any, key: Callable[[Any], ColumnElement[Any]]) -> CompoundSelect[Any]:
    """Return the batch's branches each joined to the list of numbers ``listed`` on its phone."""
    tables = (consent, optout, subscriber, disconnection)
    branches = _branches(lambda column: true())
    return _union(*(
        branch.select_from(_ListFirst(listed, table, table.c.phone == key(listed)))
        for branch, table in zip(branches, tables, strict=True)
    ))  # fmt: skip


# A scrub's statement (``load_shapes``), compiled once per dialect: the batch's branches,
# each joined to the list of numbers rather than filtered by ``IN (SELECT ...)``. The list
# is distinct, so the join finds each record once, as the filter does, and each table's
# phone index is probed once per number in the list's order, without a hashed (PostgreSQL)
# or indexed (SQLite) copy of the list made first for every branch: about a quarter less
# time in the database (docs/performance.md). On SQLite a CROSS JOIN, the list outermost:
# given the choice, its planner ran a table without ANALYZE statistics (opt_out: the
# registry never analyzes) through its sender index with the list as the inner loop, a
# pass over the list for every record of the sender.
_each = func.json_each(bindparam("phones", type_=String)).table_valued("value")
# PostgreSQL: the list as one JSON text, as for the batches (``_elements``).
_RAW = {
    "sqlite": Prepared(_joined(_each, lambda listed: listed.c.value)),
    "postgresql": Prepared(
        _joined(_elements.table_valued("phone").render_derived(), lambda listed: listed.c.phone)
    ),
}


@dataclass(frozen=True, slots=True)
class Shapes:
    """A list's facts by shape: numbers whose records differ only in their consents' ids share one.

    ``facts[i]`` is shape ``i``'s facts, decoded once (its consents carry the
    ids of the first number found with that shape); ``of[phone]`` is
    ``(i, ids)``: the number's shape and its own consents' ids, in the order of
    ``facts[i].consents``. A number absent from ``of`` has no record (``empty``).
    """

    facts: list[Facts]
    of: dict[str, tuple[int, tuple[int, ...]]]
    empty: Facts

    def facts_of(self, phone: str) -> Facts:
        """Return the number's own facts, as ``load_facts`` gives them."""
        got = self.of.get(phone)
        if got is None:
            return self.empty
        i, ids = got
        shared = self.facts[i]
        if tuple(c.id for c in shared.consents) == ids:
            return shared
        own = tuple(replace(c, id=n) for c, n in zip(shared.consents, ids, strict=True))
        return replace(shared, consents=own)


def load_shapes(
    session: Session, sender: SenderRef, phone_list: Sequence[str], at: datetime
) -> Shapes:
    """Return ``load_facts``'s facts for many numbers (a scrub), each distinct shape decoded once.

    The same statement as ``load_facts`` (without copies or a calling address),
    its rows read as the driver gives them: a number's rows less its consents'
    ids are its shape's key, and only the first row set of each shape goes
    through the result processors and the decoders. A scrubbed list of a
    million numbers holds a few shapes (one form, one time) and hundreds of
    thousands of consent rows: decoding every one (five timestamps, a
    ``ConsentFact``) cost more than the query.
    """
    conn = session.connection()
    dialect = conn.dialect.name
    step = PG_CHUNK if dialect == "postgresql" else CHUNK
    query = _RAW[dialect]
    rows_of: dict[str, list[Any]] = {}
    process: Callable[[list[Any]], list[tuple[Any, ...]]] = list
    for start in range(0, len(phone_list), step):
        chunk = list(phone_list[start : start + step])
        params = {
            "sender": sender.id,
            "at": at,
            "phones": json.dumps(chunk),
        }
        rows, process = query.raw(conn, params)
        for row in rows:
            held = rows_of.get(row[1])
            if held is None:
                rows_of[row[1]] = [row]
            else:
                held.append(row)
    suspended = sender.suspended
    by_key: dict[tuple[Any, ...], int] = {}
    facts: list[Facts] = []
    of: dict[str, tuple[int, tuple[int, ...]]] = {}
    for phone, rows in rows_of.items():
        # Everything but the number and the consent's id (a slot only consents fill here).
        key = tuple([row[:1] + row[3:] for row in rows])
        i = by_key.get(key)
        if i is None:
            i = by_key[key] = len(facts)
            facts.append(_decoded(phone, rows, process, suspended))
        of[phone] = (i, tuple([row[2] for row in rows if row[0] == "consent"]))
    return Shapes(facts, of, Facts(sender_suspended=suspended))


def _decoded(
    phone: str,
    rows: list[Any],
    process: Callable[[list[Any]], list[tuple[Any, ...]]],
    suspended: bool,
) -> Facts:
    """Return one number's facts from its rows as the driver gave them (``load_shapes``)."""
    got = _Gathered()
    for values in process(rows):
        _DECODERS[values[0]](got, values)
    return Facts(
        suspended,
        tuple(got.consents.get(phone, ())),
        tuple(got.optouts.get(phone, ())),
        got.preferences.get(phone),
        got.disconnected.get(phone),
        cap=got.caps.get(phone),
    )
