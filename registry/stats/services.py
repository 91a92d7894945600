"""Refresh the rollups and read the statistics the console charts.

Why rollups: at a million holders and tens of millions of checks, an
aggregate over the live tables takes seconds on SQLite and competes with the
check path on PostgreSQL. ``refresh`` (``registry stats refresh``, run by cron
or the worker) reads only what is new since the last run — the check log by
its primary key past a watermark — and adds it into ``stat_daily``; pages then
read a few hundred rows. Two figures are recomputed whole on each refresh,
because they are not append-only: the holders' category blocks (a snapshot of
the subscriber table, one scan) and do-not-disturb registrations (turn-ons
found with a window function over preference events).

Days are UTC days.

A check an agent made for a principal's sender (a delegation) is counted for
the principal under ``checks`` and again for the agent under
``checks_agent``: both answer for it, and the console shows the agent's row
marked "as agent".
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.models import CheckLog
from registry.complaints import stats as complaint_stats
from registry.consent.models import CHANNELS
from registry.events.models import Event
from registry.orgs.models import Organization
from registry.senders.models import CATEGORIES, Sender
from registry.stats.models import StatDaily, StatGap, StatWatermark
from registry.subscribers.models import Subscriber

CHUNK = 500_000
GAP_HORIZON = timedelta(hours=1)  # no transaction that writes the check log lasts this long


def _day(value: Any) -> date:
    """Return a ``date`` from what ``date()`` gives back (a date on PostgreSQL, text on SQLite)."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _add(session: Session, counts: dict[tuple[str, date, str, str], int]) -> None:
    """Add counts into ``stat_daily`` (insert, or add to the existing row)."""
    if not counts:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {"metric": m, "day": d, "key1": k1, "key2": k2, "value": v}
        for (m, d, k1, k2), v in counts.items()
    ]
    stmt = insert(StatDaily)
    stmt = stmt.on_conflict_do_update(
        index_elements=["metric", "day", "key1", "key2"],
        set_={"value": col(StatDaily.value) + stmt.excluded.value},
    )
    for start in range(0, len(rows), 5000):
        session.execute(stmt, rows[start : start + 5000])


def _watermark(session: Session, source: str) -> StatWatermark:
    mark = session.scalar(
        select(StatWatermark).where(col(StatWatermark.source) == source).with_for_update()
    )
    if mark is None:
        mark = StatWatermark(source=source, last_id=0)
        session.add(mark)
        session.flush()
    return mark


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh read and wrote."""

    checks_read: int
    holders: int
    dnd_days: int
    seconds: dict[str, float]


def refresh(session: Session, now: datetime) -> RefreshResult:
    """Bring every rollup up to date; the caller commits (one transaction)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    checks_read = _refresh_checks(session, now)
    seconds["checks"] = time.perf_counter() - started
    started = time.perf_counter()
    holders = _refresh_willingness(session, now)
    seconds["willingness"] = time.perf_counter() - started
    started = time.perf_counter()
    dnd_days = _refresh_dnd(session)
    seconds["dnd"] = time.perf_counter() - started
    started = time.perf_counter()
    complaint_stats.refresh(session)
    seconds["complaints"] = time.perf_counter() - started
    return RefreshResult(checks_read, holders, dnd_days, seconds)


def _refresh_checks(session: Session, now: datetime) -> int:
    """Add each check log row to the rollups exactly once: per day, organization, decision, reason.

    Delegated checks also count for the agent (metric ``checks_agent``), and a
    check naming an attested ``from`` for the carrier connecting it (``checks_carrier``).

    Ids come from a sequence at insert time but rows become visible at commit,
    so an id below the newest visible one may still be invisible (a batch inside
    its COPY). Reading past it with a plain ``max(id)`` watermark would skip it for
    good; instead each run of ids missing below the watermark is kept in
    ``stat_gap`` and read again on the next refreshes until its rows appear, or,
    after ``GAP_HORIZON`` (longer than any transaction may last), dropped as ids
    of rolled-back transactions.
    """
    mark = _watermark(session, "check_log")
    read = 0
    gaps = session.execute(
        select(col(StatGap.low), col(StatGap.high), col(StatGap.noted_at)).where(
            col(StatGap.source) == "check_log"
        )
    ).all()
    if gaps:
        session.execute(delete(StatGap).where(col(StatGap.source) == "check_log"))
    still_open: list[dict[str, Any]] = []
    for low, high, noted_at in gaps:
        found, missing = _count_checks(session, low, high)
        read += found
        if noted_at > now - GAP_HORIZON:
            still_open += [{"low": lo, "high": hi, "noted_at": noted_at} for lo, hi in missing]
    top = session.scalar(select(func.max(col(CheckLog.id)))) or 0
    while mark.last_id < top:
        upper = min(mark.last_id + CHUNK, top)
        found, missing = _count_checks(session, mark.last_id + 1, upper)
        read += found
        still_open += [{"low": lo, "high": hi, "noted_at": now} for lo, hi in missing]
        mark.last_id = upper
    if still_open:
        session.execute(insert(StatGap), [{"source": "check_log", **row} for row in still_open])
    mark.refreshed_at = now
    session.flush()
    return read


def _count_checks(session: Session, low: int, high: int) -> tuple[int, list[tuple[int, int]]]:
    """Add the visible check log rows with ids in [low, high]; return their number and the
    runs of ids in that span that are not (yet) visible."""
    # A date on PostgreSQL, ISO text on SQLite (see ``_day``).
    day: ColumnElement[date | str] = func.date(col(CheckLog.checked_at))
    in_span = and_(col(CheckLog.id) >= low, col(CheckLog.id) <= high)
    counts: dict[tuple[str, date, str, str], int] = defaultdict(int)
    found = 0
    rows = session.execute(
        select(
            day,
            col(CheckLog.organization_id),
            col(CheckLog.agent_id),
            col(CheckLog.carrier_id),
            col(CheckLog.decision),
            col(CheckLog.reason),
            col(CheckLog.sender_id),
            func.count(),
        )
        .where(in_span)
        .group_by(
            day,
            col(CheckLog.organization_id),
            col(CheckLog.agent_id),
            col(CheckLog.carrier_id),
            col(CheckLog.decision),
            col(CheckLog.reason),
            col(CheckLog.sender_id),
        )
    ).all()
    # Checks per industry (the sender's category): complaints per 10,000 checks
    # per category (registry/complaints/stats.py).
    categories = dict(
        session.execute(
            select(col(Sender.id), col(Sender.category)).where(
                col(Sender.id).in_({r[6] for r in rows})
            )
        ).all()
    )
    for d, org_id, agent_id, carrier_id, decision, reason, sender_id, n in rows:
        key = f"{decision}:{reason}"
        counts[("checks", _day(d), str(org_id), key)] += n
        if agent_id is not None:
            counts[("checks_agent", _day(d), str(agent_id), key)] += n
        counts[("checks_category", _day(d), str(categories.get(sender_id, "other")), "")] += n
        if carrier_id is not None:  # the carrier connecting the check's ``from`` (issue 15)
            counts[("checks_carrier", _day(d), str(carrier_id), key)] += n
        found += n
    _add(session, counts)
    if found == high - low + 1:
        return found, []
    # Runs of missing ids: before the first row, between rows, after the last one.
    ids = (
        select(
            col(CheckLog.id).label("id"),
            func.lead(col(CheckLog.id)).over(order_by=col(CheckLog.id)).label("next_id"),
        )
        .where(in_span)
        .subquery()
    )
    first, last = session.execute(
        select(func.min(col(CheckLog.id)), func.max(col(CheckLog.id))).where(in_span)
    ).one()
    if first is None or last is None:
        return found, [(low, high)]
    missing = [(low, first - 1)] if first > low else []
    between = session.execute(select(ids.c.id, ids.c.next_id).where(ids.c.next_id > ids.c.id + 1))
    missing += [
        (before + 1, after - 1) for before, after in cast("Iterable[tuple[int, int]]", between)
    ]
    if last < high:
        missing.append((last + 1, high))
    return found, missing


def _refresh_willingness(session: Session, now: datetime) -> int:
    """Snapshot, for today, how many holders block each category on each channel.

    A holder blocks category K on channel C when K is among their blocked
    categories or they set do-not-disturb on C (which blocks every category).
    One scan of the subscriber table computes all 24 counts.
    """
    s = Subscriber
    dnds = (("voice", col(s.dnd_voice)), ("sms", col(s.dnd_sms)))
    cols: list[ColumnElement[int]] = [func.count().label("holders")]
    keys: list[tuple[str, str]] = []
    for cat in CATEGORIES:
        # blocked_categories is a comma list of category names; none is a prefix of another.
        blocked = col(s.blocked_categories).like(f"%{cat}%")
        for channel, dnd in dnds:
            cols.append(func.sum(case((blocked | dnd, 1), else_=0)))
            keys.append((cat, channel))
    for channel, dnd in dnds:
        cols.append(func.sum(case((dnd, 1), else_=0)))
        keys.append(("dnd", channel))
    row = session.execute(select(*cols).select_from(Subscriber)).one()
    today = now.date()
    session.execute(
        delete(StatDaily).where(
            col(StatDaily.metric).in_(("holders", "blocking")),
            col(StatDaily.day) == today,
        )
    )
    counts: dict[tuple[str, date, str, str], int] = {("holders", today, "", ""): int(row[0] or 0)}
    for (k1, k2), value in zip(keys, row[1:], strict=True):
        counts[("blocking", today, k1, k2)] = int(value or 0)
    _add(session, counts)
    return int(row[0] or 0)


def _flag(channel: str) -> ColumnElement[int]:
    # Preference events carry the settings as sorted JSON (events.services.record).
    return case(
        (col(Event.data).like(f'%"dnd_{channel}": true%'), 1),
        else_=0,
    )


def _refresh_dnd(session: Session) -> int:
    """Recompute do-not-disturb turn-ons and turn-offs per day and channel."""
    flags = [_flag(ch).label(ch) for ch in CHANNELS]
    prevs = [
        func.lag(_flag(ch), 1, 0)
        .over(partition_by=col(Event.phone), order_by=col(Event.id))
        .label(f"prev_{ch}")
        for ch in CHANNELS
    ]
    columns: list[ColumnElement[Any]] = [col(Event.at).label("at"), *flags, *prevs]
    inner = select(*columns).where(col(Event.type) == "preferences.changed")
    sub = inner.subquery()
    day = func.date(sub.c.at)
    cols = []
    for ch in CHANNELS:
        flag, prev = sub.c[ch], sub.c[f"prev_{ch}"]
        cols.append(func.sum(case((and_(flag == 1, prev == 0), 1), else_=0)))
        cols.append(func.sum(case((and_(flag == 0, prev == 1), 1), else_=0)))
    rows = session.execute(select(day, *cols).group_by(day)).all()
    session.execute(delete(StatDaily).where(col(StatDaily.metric).in_(("dnd_on", "dnd_off"))))
    counts: dict[tuple[str, date, str, str], int] = {}
    for row in rows:
        d, it = row[0], iter(row[1:])
        for ch in CHANNELS:
            on, off = int(next(it) or 0), int(next(it) or 0)
            if on:
                counts[("dnd_on", _day(d), ch, "")] = on
            if off:
                counts[("dnd_off", _day(d), ch, "")] = off
    _add(session, counts)
    return len(rows)


# --- reading -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Willingness:
    """Share of holders blocking each category, per channel, on the snapshot day."""

    day: date | None
    holders: int
    rows: list[tuple[str, int, int]]  # category, blocking on voice, blocking on sms


def willingness(session: Session, on: date | None = None) -> Willingness:
    """Return the latest snapshot (or the last one on or before ``on``)."""
    query = select(func.max(col(StatDaily.day))).where(col(StatDaily.metric) == "holders")
    if on is not None:
        query = query.where(col(StatDaily.day) <= on)
    day = session.scalar(query)
    if day is None:
        return Willingness(None, 0, [])
    values = {
        (m, k1, k2): v
        for m, k1, k2, v in session.execute(
            select(
                col(StatDaily.metric),
                col(StatDaily.key1),
                col(StatDaily.key2),
                col(StatDaily.value),
            ).where(
                col(StatDaily.metric).in_(("holders", "blocking")),
                col(StatDaily.day) == day,
            )
        )
    }
    rows = [
        (cat, values.get(("blocking", cat, "voice"), 0), values.get(("blocking", cat, "sms"), 0))
        for cat in (*CATEGORIES, "dnd")
    ]
    return Willingness(_day(day), values.get(("holders", "", ""), 0), rows)


def month_of(d: date) -> str:
    """Return ``YYYY-MM``."""
    return f"{d.year:04d}-{d.month:02d}"


def quarter_of(d: date) -> str:
    """Return ``YYYYQn``."""
    return f"{d.year:04d}Q{(d.month - 1) // 3 + 1}"


def quarter_bounds(label: str) -> tuple[date, date]:
    """Return the first day of quarter ``YYYYQn`` and the first day of the next one."""
    try:
        year, q = int(label[:4]), int(label[5:])
        if label[4] not in "Qq" or not 1 <= q <= 4 or not 2000 <= year <= 2200 or len(label) != 6:
            raise ValueError(label)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not a quarter like 2026Q4: {label!r}") from exc
    start = date(year, 3 * q - 2, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return start, end


@dataclass(frozen=True, slots=True)
class DndPoint:
    """Do-not-disturb turn-ons and turn-offs in one period, and the running total."""

    period: str
    on_voice: int
    on_sms: int
    off_voice: int
    off_sms: int
    total_voice: int
    total_sms: int


def dnd_series(
    session: Session, start: date | None = None, end: date | None = None
) -> list[DndPoint]:
    """Return DND registrations per month (within [start, end) when given), with running totals."""
    rows = session.execute(
        select(col(StatDaily.metric), col(StatDaily.day), col(StatDaily.key1), col(StatDaily.value))
        .where(col(StatDaily.metric).in_(("dnd_on", "dnd_off")))
        .order_by(col(StatDaily.day))
    )
    per: dict[str, dict[str, int]] = {}
    totals = {"voice": 0, "sms": 0}
    before = {"voice": 0, "sms": 0}
    for metric, day, channel, value in rows:
        d = _day(day)
        sign = 1 if metric == "dnd_on" else -1
        if start is not None and d < start:
            before[channel] += sign * value
            continue
        if end is not None and d >= end:
            continue
        bucket = per.setdefault(month_of(d), defaultdict(int))
        bucket[f"{metric[4:]}_{channel}"] += value
    out = []
    totals.update(before)
    for period in sorted(per):
        b = per[period]
        totals["voice"] += b["on_voice"] - b["off_voice"]
        totals["sms"] += b["on_sms"] - b["off_sms"]
        out.append(
            DndPoint(
                period,
                b["on_voice"],
                b["on_sms"],
                b["off_voice"],
                b["off_sms"],
                totals["voice"],
                totals["sms"],
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class OrgChecks:
    """One organization's checks in a period: totals and denials by reason.

    ``tier``: ``merchant`` (the checks of its own senders, whoever asked),
    ``agent`` (those it made as an agent for other organizations' senders, also
    counted in each principal's row), or ``carrier`` (those naming a ``from`` it
    connects, also counted in the merchant's row).
    """

    slug: str
    name: str
    total: int
    allowed: int
    denied: int
    deny_reasons: dict[str, int]
    tier: str = "merchant"

    @property
    def as_agent(self) -> bool:
        """Tell whether this row counts the organization's checks as an agent."""
        return self.tier == "agent"

    @property
    def deny_rate(self) -> float:
        """Return the share of checks answered deny."""
        return self.denied / self.total if self.total else 0.0


TIERS = {"merchant": "checks", "agent": "checks_agent", "carrier": "checks_carrier"}
_TIER_OF = {metric: tier for tier, metric in TIERS.items()}


def checks_by_org(
    session: Session,
    start: date | None = None,
    end: date | None = None,
    limit: int = 50,
    tiers: tuple[str, ...] = ("merchant", "agent"),
) -> list[OrgChecks]:
    """Return checks per organization and tier (``TIERS``) in [start, end), busiest first.

    An organization that checked as an agent has a second row, tier ``agent``;
    a carrier connecting the addresses checks named, a row of tier ``carrier``.
    """
    query = (
        select(
            col(StatDaily.metric),
            col(StatDaily.key1),
            col(StatDaily.key2),
            func.sum(col(StatDaily.value)),
        )
        .where(col(StatDaily.metric).in_([TIERS[t] for t in tiers]))
        .group_by(col(StatDaily.metric), col(StatDaily.key1), col(StatDaily.key2))
    )
    if start is not None:
        query = query.where(col(StatDaily.day) >= start)
    if end is not None:
        query = query.where(col(StatDaily.day) < end)
    per: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for metric, org_id, key, n in session.execute(query):
        per[(org_id, metric)][key] += int(n)
    names = _org_names(session, {int(org_id) for org_id, _ in per})
    out = []
    for (org_id, metric), keys in per.items():
        allowed = sum(n for k, n in keys.items() if k.startswith("allow:"))
        denied = sum(n for k, n in keys.items() if k.startswith("deny:"))
        reasons = {k[5:]: n for k, n in sorted(keys.items()) if k.startswith("deny:")}
        slug, name = names.get(int(org_id), (org_id, org_id))
        tier = _TIER_OF[metric]
        out.append(OrgChecks(slug, name, allowed + denied, allowed, denied, reasons, tier))
    out.sort(key=lambda o: (-o.total, o.slug, list(TIERS).index(o.tier)))
    return out[:limit]


def _org_names(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    ids = list(ids)
    if not ids:
        return {}
    # Organization.id is typed optional (unset before insert); a stored row always has one.
    return {
        i: (slug, name)  # type: ignore[misc]
        for i, slug, name in session.execute(
            select(col(Organization.id), col(Organization.slug), col(Organization.name)).where(
                col(Organization.id).in_(ids)
            )
        )
    }


def last_refresh(session: Session) -> datetime | None:
    """Return when the rollups were last refreshed."""
    return session.scalar(
        select(col(StatWatermark.refreshed_at)).where(col(StatWatermark.source) == "check_log")
    )


def median(values: Sequence[float]) -> float | None:
    """Return the median, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def timedelta_days(value: timedelta) -> float:
    """Return a duration in days."""
    return value.total_seconds() / 86_400
