"""Watchlists: the numbers an organization already holds and wants number-level changes for.

There is deliberately no way to read a watchlist back as a list of numbers:
the registry never hands out numbers, it only tells about numbers the caller
names. Adding is idempotent, removing an unwatched number is harmless.

A watch is not a way around the limit on checks of strangers' numbers (SPEC §8,
last line). A number the organization has a relationship with — a consent the
holder confirmed or an opt-out, with one of its senders, or a check of its
own — is watched freely; any other new entry is charged to the cold-number
budget the checks use, and the whole call is refused when it is spent. The
feed then shows a watched number's changes made since the watch began
(``created_at``, kept while the number stays watched), never its history.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.checks.models import CheckLog
from registry.checks.services import ColdBudget
from registry.consent.models import Consent, OptOut
from registry.database.statements import table_of
from registry.sync.models import Watch
from registry.timeutil import utcnow

MAX_PHONES = 10_000
CHUNK = 1_000
w = Watch.__table__  # type: ignore[attr-defined]
c, o, k = table_of(Consent), table_of(OptOut), table_of(CheckLog)


def _theirs(table: Table, org_id: int) -> ColumnElement[bool]:
    # Made for one of its senders, or by it as an agent for another's.
    return or_(table.c.organization_id == org_id, table.c.agent_id == org_id)


def _known(session: Session, org_id: int, phones: list[str]) -> set[str]:
    """Return which of ``phones`` the organization has a relationship with (its own records).

    Records of its senders or made by it as an agent: a consent the holder
    confirmed (at some time: ``activated_at``), an opt-out, a check it asked.
    A pending consent is only the sender's claim, and is no relationship here.
    """
    query = union(
        select(c.c.phone).where(
            c.c.phone.in_(phones), _theirs(c, org_id), c.c.activated_at.is_not(None)
        ),
        select(o.c.phone).where(o.c.phone.in_(phones), _theirs(o, org_id)),
        select(k.c.phone).where(k.c.phone.in_(phones), _theirs(k, org_id)),
    )
    return set(session.scalars(query))


def _watched(session: Session, org_id: int, phones: list[str]) -> set[str]:
    query = select(w.c.phone).where(w.c.organization_id == org_id, w.c.phone.in_(phones))
    return set(session.scalars(query))


def strangers(session: Session, org_id: int, phones: Sequence[str]) -> int:
    """Return how many of ``phones`` would be new entries on numbers the organization has no record with."""
    unique = list(dict.fromkeys(phones))
    cold = 0
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        new = set(chunk) - _watched(session, org_id, chunk)
        if new:
            cold += len(new - _known(session, org_id, sorted(new)))
    return cold


def watch(
    session: Session, org_id: int, phones: Sequence[str], gate: ColdBudget | None = None
) -> tuple[int, int]:
    """Add E.164 numbers to the organization's watchlist; return (how many were new, charged).

    ``gate`` is spent first with the number of new entries on numbers the
    organization has no relationship with (``charged``); when it refuses,
    nothing is added.
    """
    charged = strangers(session, org_id, phones)
    if gate is not None:
        gate.spend(charged)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    added = 0
    unique = list(dict.fromkeys(phones))
    for start in range(0, len(unique), CHUNK):
        rows = [
            {"phone": p, "organization_id": org_id, "created_at": now}
            for p in unique[start : start + CHUNK]
        ]
        # ON CONFLICT DO NOTHING: two concurrent calls with the same number both succeed.
        statement = insert(w).values(rows).on_conflict_do_nothing().returning(w.c.phone)
        added += len(session.execute(statement).all())
    return added, charged


def unwatch(session: Session, org_id: int, phones: Sequence[str]) -> int:
    """Remove numbers from the organization's watchlist; return how many were watched."""
    removed = 0
    unique = list(dict.fromkeys(phones))
    for start in range(0, len(unique), CHUNK):
        result = session.execute(
            delete(w).where(
                and_(w.c.organization_id == org_id, w.c.phone.in_(unique[start : start + CHUNK]))
            )
        )
        removed += max(result.rowcount, 0)  # type: ignore[attr-defined]
    return removed


def count(session: Session, org_id: int) -> int:
    """Return how many numbers the organization watches (a count, never the numbers)."""
    return int(
        session.execute(
            select(func.count()).select_from(w).where(w.c.organization_id == org_id)
        ).scalar_one()
    )
