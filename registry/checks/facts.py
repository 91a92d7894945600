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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from registry.consent.models import Consent, OptOut
from registry.copies import VERIFY, Copies
from registry.db import Prepared, table_of
from registry.decision import ConsentFact, Facts, OptOutFact, Preferences
from registry.numbers.models import Disconnection
from registry.senders.services import SenderRef
from registry.subscribers.models import Subscriber
from registry.timeutil import UTCDateTime

# SQLite allows 32,766 bound parameters; four branches of the fact query each
# take the chunk's phones, so a chunk stays well under that. PostgreSQL takes
# the chunk as one array parameter (``= ANY``): a whole batch in one query,
# and no statement with thousands of placeholders for the driver to parse.
CHUNK = 2_000
PG_CHUNK = 10_000

consent, optout = table_of(Consent), table_of(OptOut)
subscriber, disconnection = table_of(Subscriber), table_of(Disconnection)
# A slot a branch leaves empty. Plain NULL, not cast: a UNION takes its column
# types from its branches' other values (the consent branch fills every slot),
# and the single check's statement stays under psycopg's 4,096-byte query
# cache (it re-parsed longer statements on every execute: 647k instructions
# against 182k).
_EMPTY: ColumnElement[Any] = null()
TEXTS, TIMES = 3, 5


def _row(
    kind: str,
    key: ColumnElement[Any],
    record_id: ColumnElement[Any] = _EMPTY,
    texts: Sequence[ColumnElement[Any]] = (),
    times: Sequence[ColumnElement[Any]] = (),
) -> list[ColumnElement[Any]]:
    """Return one branch's columns: its kind, its number (NULL when it verifies a copy), the slots."""
    texts = [*texts, *[_EMPTY] * (TEXTS - len(texts))]
    times = [*times, *[_EMPTY] * (TIMES - len(times))]
    return [
        # Inlined, not bound: fewer parameters on every check.
        literal_column(f"'{kind}'", String).label("kind"),
        key.label("phone"),
        record_id.label("id"),
        *(t.label(f"text{i}") for i, t in enumerate(texts, 1)),
        *(t.label(f"time{i}") for i, t in enumerate(times, 1)),
    ]


def _branches(match: Callable[[Any], ColumnElement[bool]]) -> tuple[Select[Any], ...]:
    """Return the selects of every fact for the numbers ``match`` picks, about ``:sender``."""
    dnd = case(
        (and_(subscriber.c.dnd_voice, subscriber.c.dnd_sms), "sms,voice"),
        (subscriber.c.dnd_voice, "voice"),
        (subscriber.c.dnd_sms, "sms"),
        else_="",
    )
    at = bindparam("at", type_=UTCDateTime())
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
                  times=(refused.received_at, refused.created_at))
        ).where(
            and_(match(refused.phone), refused.sender_id == bindparam("sender"),
                 refused.withdrawn_at.is_(None))
        ),
        select(
            *_row("subscriber", holder.phone,
                  texts=(dnd, holder.blocked_categories, holder.quiet_hours),
                  times=(holder.updated_at,))
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


# The fingerprints of the copies a request used, in the same layout (registry/copies.py).
_VERIFY = tuple(
    select_.with_only_columns(*_row(kind, _EMPTY, texts=(select_.selected_columns[0],)))
    for kind, select_ in VERIFY.items()
)
_BY_PHONES = _branches(lambda column: column.in_(bindparam("phones", expanding=True)))
_BY_ARRAY = _branches(lambda column: column == any_(bindparam("phones", type_=ARRAY(String))))
_BY_PHONE = _branches(lambda column: column == bindparam("phone"))
# One round trip: the facts for a list of numbers (batches), or for one (a
# precompiled statement: the single check), with or without the copies' check.
FACTS: CompoundSelect[Any] = union_all(*_BY_PHONES)
_QUERIES: dict[tuple[bool, str], CompoundSelect[Any]] = {
    (False, "sqlite"): FACTS,
    (True, "sqlite"): union_all(*_BY_PHONES, *_VERIFY),
    (False, "postgresql"): union_all(*_BY_ARRAY),
    (True, "postgresql"): union_all(*_BY_ARRAY, *_VERIFY),
}
_ONE = {False: Prepared(union_all(*_BY_PHONE)), True: Prepared(union_all(*_BY_PHONE, *_VERIFY))}


def _refusals(match: Callable[[Any], ColumnElement[bool]], since: Any) -> tuple[Select[Any], ...]:
    """Return the selects of every refusal of the numbers ``match`` picks recorded at ``since`` or later.

    A refusal is what turns an answer to deny: an opt-out from ``:sender``, a
    consent for it that ended, a change of the holder's preferences, a
    disconnection. Each is one probe of the phone-keyed index the facts use.
    """
    return (
        select(optout.c.phone).where(
            and_(match(optout.c.phone), optout.c.sender_id == bindparam("sender"),
                 optout.c.created_at >= since)
        ),
        select(consent.c.phone).where(
            and_(match(consent.c.phone), consent.c.sender_id == bindparam("sender"),
                 consent.c.ended_at >= since)
        ),
        select(subscriber.c.phone).where(and_(match(subscriber.c.phone),
                                              subscriber.c.updated_at >= since)),
        select(disconnection.c.phone).where(
            and_(match(disconnection.c.phone), disconnection.c.created_at >= since)
        ),
    )  # fmt: skip


_SINCE = bindparam("since", type_=UTCDateTime())
# True while the number ``:phone`` has no refusal about ``:sender`` recorded at
# ``:since`` or later: the condition of a check's log row when its facts came
# from a standby that may lack commits from ``:since`` on (checks/services.py).
NO_FRESH_REFUSAL: ColumnElement[bool] = and_(
    *(~s.exists() for s in _refusals(lambda column: column == bindparam("phone"), _SINCE))
)
# The numbers of ``:phones`` with such a refusal (a batch), and the copies' fingerprints.
_FRESH_REFUSALS = _refusals(
    lambda column: column == any_(bindparam("phones", type_=ARRAY(String))), _SINCE
)


def fresh_refusals(
    session: Session,
    sender: SenderRef,
    phone_list: Sequence[str],
    since: datetime,
    copies: Copies | None = None,
) -> set[str]:
    """Return the numbers with a refusal recorded at ``since`` or later (PostgreSQL, the primary).

    With ``copies``, the same statement verifies them (StaleCopy when out of date).
    """
    branches = [
        s.with_only_columns(*_row("refusal", s.selected_columns[0])) for s in _FRESH_REFUSALS
    ]
    params: dict[str, Any] = {"sender": sender.id, "since": since, "phones": list(phone_list)}
    if copies is not None:
        branches.extend(_VERIFY)
        params |= copies.params()
    got = _Gathered()
    found: set[str] = set()
    for row in session.execute(union_all(*branches), params).all():
        if row[0] == "refusal":
            found.add(row[1])
        else:
            _fingerprint(got, row)
    if copies is not None:
        seen = got.fingerprints
        copies.verify(seen.get("key", []), seen.get("sender", []), seen.get("grant", []))
    return found


def _split(text: str | None) -> frozenset[str]:
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
    disconnected: dict[str, datetime] = field(default_factory=dict)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)


Row = Sequence[Any]  # kind, phone, id, text1, text2, text3, time1 .. time5


def _consent(got: _Gathered, row: Row) -> None:
    # text: channels, category, status; time: given, recorded, activated, expires, pending until
    _, phone, id_, channels, category, status, given, recorded, activated, expires, pending = row
    got.consents.setdefault(phone, []).append(
        ConsentFact(
            id_, _split(channels), status, given, recorded, category, activated, expires, pending
        )
    )


def _optout(got: _Gathered, row: Row) -> None:
    # text: channels; time: received, recorded
    phone, channels, received, recorded = row[1], row[3], row[6], row[7]
    got.optouts.setdefault(phone, []).append(OptOutFact(_split(channels), received, recorded))


def _subscriber(got: _Gathered, row: Row) -> None:
    # text: do-not-disturb channels, blocked categories, quiet hours; time: set at
    phone, dnd, blocked, quiet, set_at = row[1], row[3], row[4], row[5], row[6]
    got.preferences[phone] = Preferences(set_at, _split(dnd), _split(blocked), _quiet(quiet))


def _disconnection(got: _Gathered, row: Row) -> None:
    # time: the latest disconnection at or before the check's time
    if row[6] is not None:
        got.disconnected[row[1]] = row[6]


def _fingerprint(got: _Gathered, row: Row) -> None:
    # text: the fingerprint of a key, sender or grant row as the database holds it now
    got.fingerprints.setdefault(row[0], []).append(row[3])


_DECODERS: dict[str, Callable[[_Gathered, Row], None]] = {
    "consent": _consent,
    "optout": _optout,
    "subscriber": _subscriber,
    "disconnection": _disconnection,
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
    got = _Gathered()
    conn = session.connection()
    dialect = conn.dialect.name
    step = PG_CHUNK if dialect == "postgresql" else CHUNK
    # With copies to verify, the first query runs even for no phones at all.
    for start in range(0, max(len(phone_list), copies is not None), step):
        verify = copies is not None and start == 0
        params: dict[str, Any] = {"sender": sender.id, "at": at}
        if verify and copies is not None:
            params |= copies.params()
        rows: Sequence[Row]
        if len(phone_list) == 1:
            params["phone"] = phone_list[0]
            rows = _ONE[verify].rows(conn, params)
        else:
            params["phones"] = list(phone_list[start : start + step])
            rows = conn.execute(_QUERIES[verify, dialect], params).all()
        for row in rows:
            _DECODERS[row[0]](got, row)
    if copies is not None:
        seen = got.fingerprints
        copies.verify(seen.get("key", []), seen.get("sender", []), seen.get("grant", []))
    empty = Facts(sender_suspended=sender.suspended)
    result = {}
    for phone in phone_list:
        if (
            phone in got.consents
            or phone in got.optouts
            or phone in got.preferences
            or phone in got.disconnected
        ):
            result[phone] = Facts(
                sender.suspended,
                tuple(got.consents.get(phone, ())),
                tuple(got.optouts.get(phone, ())),
                got.preferences.get(phone),
                got.disconnected.get(phone),
            )
        else:
            result[phone] = empty
    return result
