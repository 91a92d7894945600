"""Watchlists: the numbers an organization already holds and wants number-level changes for.

There is deliberately no way to read a watchlist back as a list of numbers:
the registry never hands out numbers, it only tells about numbers the caller
names. Adding is idempotent, removing an unwatched number is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.sync.models import Watch
from registry.timeutil import utcnow

MAX_PHONES = 10_000
CHUNK = 1_000
w = Watch.__table__  # type: ignore[attr-defined]


def watch(session: Session, org_id: int, phones: Sequence[str]) -> int:
    """Add E.164 numbers to the organization's watchlist; return how many were new."""
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
    return added


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
