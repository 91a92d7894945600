"""Complaint deadlines in working days, on China's public-holiday calendar.

The 2020 draft rules count the regulator's deadlines in working days. A
working day is what ``chinese_calendar.is_workday`` says: Monday to Friday
except the State Council's public holidays, plus the weekend days worked in
exchange for a long holiday (调休, e.g. Sunday 28 September 2025 before the
National Day week). The package ships the State Council's notice of each
year; for a year it does not know yet (``NotImplementedError``) a day counts
as working when it is a weekday: the deadline is then at worst early, never
late, and ``pip install -U chinesecalendar`` brings the new year's notice.

Steps and their settings (working days, REGISTRY_COMPLAINT_*_DAYS):
acknowledge (``ack``), an organization's answer (``org``), the final reply
(``final``). Day 0 is the day the complaint was filed (or forwarded), in the
registry's time zone; the deadline is the N-th working day after it, and an
item is overdue from the day after its deadline.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar


def is_workday(day: date) -> bool:
    """Tell whether ``day`` is a working day in mainland China."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the installed calendar does not cover yet
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """Return the ``days``-th working day after ``start`` (``start`` itself not counted)."""
    day = start
    left = days
    while left > 0:
        day += timedelta(days=1)
        if is_workday(day):
            left -= 1
    return day


def local_day(at: datetime, tz: ZoneInfo) -> date:
    """Return the calendar day of ``at`` in the registry's time zone."""
    return at.astimezone(tz).date()


def due(at: datetime, days: int, tz: ZoneInfo) -> date:
    """Return the last working day to act on something that started at ``at``."""
    return add_working_days(local_day(at, tz), days)


def is_overdue(due_on: date | None, done_at: datetime | None, now: datetime, tz: ZoneInfo) -> bool:
    """Tell whether an item due on ``due_on`` is still undone after that day."""
    return due_on is not None and done_at is None and local_day(now, tz) > due_on
