"""Warnings before they are needed: senders whose checks or complaints jump above their baseline.

A sender is flagged on a day when its count that day is more than ``FACTOR``
times the median of its own previous ``BASELINE_DAYS`` days (days without any
count as 0) and at least the floor (``CHECK_FLOOR`` checks, ``COMPLAINT_FLOOR``
complaints), so that a campaign before 618 or Double-11 is seen while officers
can still warn the sender. Read from the check log and the complaints of the
last 29 days (one grouped query each); nothing is stored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.models import CheckLog
from registry.complaints.models import Complaint
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.stats.services import median

FACTOR = 3
BASELINE_DAYS = 28
CHECK_FLOOR = 100
COMPLAINT_FLOOR = 3


@dataclass(frozen=True, slots=True)
class Spike:
    """One sender's count on the day against its own baseline."""

    what: str  # checks | complaints
    sender: str
    sender_name: str
    organization: str
    organization_slug: str
    credit_code: str | None
    count: int
    baseline: float

    @property
    def factor(self) -> float | None:
        """Return how many times the baseline the day's count is (None for a zero baseline)."""
        return self.count / self.baseline if self.baseline else None


def _daily(session: Session, column: Any, sender: Any, start: datetime, end: datetime) -> Any:
    # A date on PostgreSQL, ISO text on SQLite: compared as text below.
    day = func.date(column)
    return session.execute(
        select(sender, day, func.count())
        .where(column >= start, column < end, sender.is_not(None))
        .group_by(sender, day)
    ).all()


def spikes(session: Session, day: date) -> list[Spike]:
    """Return the senders whose checks or complaints on ``day`` jump above their baseline."""
    start = datetime.combine(day - timedelta(days=BASELINE_DAYS), time(), UTC)
    end = datetime.combine(day + timedelta(days=1), time(), UTC)
    found: list[tuple[str, int, int, float]] = []
    sources = (
        ("checks", col(CheckLog.checked_at), col(CheckLog.sender_id), CHECK_FLOOR),
        ("complaints", col(Complaint.created_at), col(Complaint.sender_id), COMPLAINT_FLOOR),
    )
    for what, column, sender, floor in sources:
        per: dict[int, dict[str, int]] = defaultdict(dict)
        for sender_id, d, n in _daily(session, column, sender, start, end):
            per[int(sender_id)][str(d)[:10]] = int(n)
        for sender_id, counts in per.items():
            today = counts.get(day.isoformat(), 0)
            if today < floor:
                continue
            history = [
                counts.get((day - timedelta(days=i)).isoformat(), 0)
                for i in range(1, BASELINE_DAYS + 1)
            ]
            base = median(history) or 0.0
            if today > FACTOR * base:
                found.append((what, sender_id, today, base))
    if not found:
        return []
    names: dict[int, tuple[Sender, Organization]] = {}
    rows = session.execute(
        select(Sender, Organization)
        .join(Organization, col(Organization.id) == Sender.organization_id)
        .where(col(Sender.id).in_({f[1] for f in found}))
    )
    for s, o in rows:
        names[s.id or 0] = (s, o)
    out = []
    for what, sender_id, today, base in found:
        who, org = names[sender_id]
        out.append(Spike(what, who.code, who.name, org.name, org.slug, org.credit_code,
                         today, base))  # fmt: skip
    out.sort(key=lambda s: (s.what, -(s.factor or float("inf")), s.sender))
    return out
