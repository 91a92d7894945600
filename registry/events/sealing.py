"""Seal the event log: number committed events for the change feed and chain them per phone.

Why numbers are given after commit, and not by the writer
---------------------------------------------------------
A feed reader pages with ``seq > after``. If writers took their number when
they wrote (an autoincrement id, a database sequence), two transactions could
take 7 and 8, 8 could commit first, a reader could read 8 and move its cursor
past 7 — and when 7 commits it is never seen. So writers leave ``seq`` empty,
and the *sealer* numbers events afterwards: under one lock (a
transaction-scoped advisory lock on PostgreSQL; SQLite serializes writers
already), it reads the committed events that have no number yet, in id order,
and gives them ``max(seq) + 1, + 2, ...``. An event that commits late is
numbered by a later run, *after* everything a reader may already have seen.
Numbers become visible atomically when the sealer commits, and runs are
serialized, so no reader ever sees ``n + 1`` before ``n``: the feed is ordered
and gap-free for every reader, whatever the writers' timing.

We chose this over PostgreSQL snapshot horizons (``pg_snapshot_xmin``) because
it works the same on SQLite and PostgreSQL, keeps the cursor a plain integer,
and leaves the writers' path untouched. The price is latency: a change enters
the feed when the sealer next runs — ``registry worker`` runs it continuously,
and a feed read runs it too when no one else is (a *try* lock: readers never
queue behind each other).

Why the hash chain is built here too
------------------------------------
Each event's ``hash`` is sha256 over its canonical fields and ``prev_hash``,
the hash of the same phone's previous event in feed order. Chaining at write
time would need writers on one phone to take turns *inside* their
transactions (a per-phone lock), and writers that also lock consent rows
could deadlock on it. The sealer is already the one serialized place that
sees events in their final order, so it chains them there: no lock on the
write path, no fork in a chain, and a chain order that is the feed order a
regulator replays. An event is chained within one sealer run of its commit.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from registry.database.statements import Direct, Prepared
from registry.events.models import Event
from registry.timeutil import iso

# The fields an event's hash covers, in a fixed order: everything a reader relies
# on. Not ``id`` or ``seq``: they are positions, and the chain itself fixes order.
CHAINED = (
    "phone", "type", "at", "sender_id", "consent_id", "organization_id", "agent_id",
    "actor", "via", "channels", "category", "state", "data",
)  # fmt: skip
BATCH = 10_000
LOCK = 0x616E6E  # the sealer's advisory lock id on PostgreSQL
_HEAD_CHUNK = 1_000

e = Event.__table__  # type: ignore[attr-defined]
_PENDING = (
    select(e.c.id, *(e.c[name] for name in CHAINED))
    .where(e.c.seq.is_(None))
    .order_by(e.c.id)
    .limit(bindparam("n"))
)
_ANY_PENDING = select(e.c.id).where(e.c.seq.is_(None)).limit(1)
_TOP = select(func.max(e.c.seq))
_TOP_PREPARED = Prepared(_TOP)  # the single check's, on its thread's connection
_last = (
    select(e.c.phone, func.max(e.c.seq).label("m"))
    .where(and_(e.c.phone.in_(bindparam("phones", expanding=True)), e.c.seq.is_not(None)))
    .group_by(e.c.phone)
    .subquery()
)
_HEADS = select(e.c.phone, e.c.hash).join(
    _last, and_(e.c.phone == _last.c.phone, e.c.seq == _last.c.m)
)
_SEAL = (
    update(e)
    .where(e.c.id == bindparam("eid"))
    .values(seq=bindparam("s"), prev_hash=bindparam("p"), hash=bindparam("h"))
)

_HEADS_PG = text(
    "SELECT p.phone, (SELECT hash FROM event WHERE event.phone = p.phone AND seq IS NOT NULL "
    "ORDER BY seq DESC LIMIT 1) FROM unnest(CAST(:phones AS text[])) AS p(phone)"
)
_SEAL_ARRAYS = text(
    "UPDATE event SET seq = v.s, prev_hash = v.p, hash = v.h "
    "FROM (SELECT unnest(CAST(:ids AS bigint[])) AS eid, unnest(CAST(:seqs AS bigint[])) AS s, "
    "unnest(CAST(:prevs AS text[])) AS p, unnest(CAST(:hashes AS text[])) AS h) AS v "
    "WHERE event.id = v.eid"
)


def chain_hash(fields: dict[str, Any], prev: str | None) -> str:
    """Return sha256 over the canonical JSON of an event's fields and its predecessor's hash.

    Canonical: sorted keys, no spaces, UTF-8, the time as ISO 8601 UTC.
    """
    doc = {k: (iso(v) if k == "at" else v) for k, v in fields.items()} | {"prev": prev}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _heads(session: Session, phones: list[str]) -> dict[str, str | None]:
    heads: dict[str, str | None] = {}
    if session.get_bind().dialect.name == "postgresql":
        # One backward index probe on (phone, seq) per phone.
        heads.update(session.execute(_HEADS_PG, {"phones": phones}).all())
        return heads
    for start in range(0, len(phones), _HEAD_CHUNK):
        chunk = phones[start : start + _HEAD_CHUNK]
        heads.update(session.execute(_HEADS, {"phones": chunk}).all())
    return heads


def seal(session: Session, *, wait: bool = True, batch: int = BATCH) -> int:
    """Number and chain committed, unsealed events in id order; return how many.

    The commit is the caller's. With ``wait=False`` on PostgreSQL, return 0 at
    once when another transaction is sealing.
    """
    if session.get_bind().dialect.name == "postgresql":
        if not wait and session.execute(_ANY_PENDING).first() is None:
            return 0  # a reader's common case: nothing to seal, no lock taken
        if wait:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        elif not session.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK}
        ).scalar():
            return 0
    pending = session.execute(_PENDING, {"n": batch}).all()
    if not pending:
        return 0
    top = session.execute(_TOP).scalar() or 0
    heads = _heads(session, list({row[1] for row in pending}))
    rows = []
    for i, (eid, *values) in enumerate(pending, 1):
        fields = dict(zip(CHAINED, values, strict=True))
        phone = str(fields["phone"])
        prev = heads.get(phone)
        digest = chain_hash(fields, prev)
        heads[phone] = digest
        rows.append({"eid": eid, "s": top + i, "p": prev, "h": digest})
    if session.get_bind().dialect.name == "postgresql":
        # One statement for the whole batch (an executemany costs a round trip a row).
        session.execute(
            _SEAL_ARRAYS,
            {
                "ids": [r["eid"] for r in rows],
                "seqs": [r["s"] for r in rows],
                "prevs": [r["p"] for r in rows],
                "hashes": [r["h"] for r in rows],
            },
        )
    else:
        session.execute(_SEAL, rows)
    return len(rows)


def last_seq(session: Session | Direct) -> int:
    """Return the newest feed number (0 for an empty log), on a session or a thread's ``Direct``."""
    if isinstance(session, Direct):
        return int(_TOP_PREPARED.rows(session, {})[0][0] or 0)
    return int(session.execute(_TOP).scalar() or 0)


# database (its connection pool, shared by an engine's option variants) -> (read at, feed number).
_KNOWN: dict[int, tuple[float, int]] = {}
KNOWN_TTL = 0.05


def known_seq(session: Session) -> int:
    """Return a feed number every change up to which is committed and visible: cheap, for receipts.

    Read with ``max(seq)`` at most every ``KNOWN_TTL`` seconds per process and
    database, so a check pays no query for it. A value read earlier is still a
    true statement — the changes up to it were committed before this check
    read its facts — just a less precise one; it lags by at most the TTL, well
    inside the sealer's own lag (a change is numbered within one worker tick).
    """
    return known_seq_of(session.get_bind().engine, session)


def known_seq_of(engine: Engine, on: Session | Direct) -> int:
    """Return ``known_seq`` for ``engine``'s database, read on ``on`` when it is due."""
    key = id(engine.pool)
    now = time.monotonic()
    known = _KNOWN.get(key)
    if known is None or now - known[0] > KNOWN_TTL:
        known = _KNOWN[key] = (now, last_seq(on))
    return known[1]


def forget_known() -> None:
    """Drop the cached feed numbers (tests that roll back the log use this)."""
    _KNOWN.clear()
