"""Times: aware UTC inside, naive UTC in the database, ISO 8601 with Z outside."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Times the registry accepts from outside, as written (wall clock, any offset).
# The calendar ends at 0001-01-01 and 9999-12-31: a time near either edge
# overflows when it is moved to UTC, or later when a day, a pending period or a
# zone is added to it. Nothing the registry records is that old or that far
# ahead, so input outside these years is refused where it is parsed (422),
# leaving centuries of room for every computation after.
EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(9000, 12, 31, 23, 59, 59, 999999)
OUT_OF_RANGE = "the time must fall in the years 1900 to 9000"


def within_calendar(value: datetime) -> datetime:
    """Return ``value``, or raise ValueError when it lies outside the years 1900 to 9000."""
    if not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
        raise ValueError(OUT_OF_RANGE)
    return value


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def to_utc(value: datetime, default_tz: tzinfo) -> datetime:
    """Return ``value`` in aware UTC; a naive value is in ``default_tz`` (SPEC §4)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """Format an aware time as ISO 8601 UTC with a ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as naive UTC on every backend; read them back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database; normalize at the edge")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)
