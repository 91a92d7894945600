"""Times: aware UTC inside, naive UTC in the database, ISO 8601 with Z outside."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any, overload

from sqlalchemy import DateTime
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
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


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
def iso(value: datetime | None) -> str | None:
    """Format an aware time as ISO 8601 UTC with a ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"  # an aware UTC time's ISO form ends in +00:00


NAIVE = "naive datetime reached the database; normalize at the edge"


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as naive UTC on every backend; read them back aware.

    On SQLite, where a time is stored as SQLAlchemy's text
    (``YYYY-MM-DD HH:MM:SS.ffffff``, which is ``isoformat(" ", "microseconds")``
    of the naive time), the bind and result processors are each one function
    instead of SQLAlchemy's decorator wrapping its impl's: a check binds three
    times and reads several (tests/unit/test_timeutil.py holds them equal to
    SQLAlchemy's own, string for string).
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NAIVE)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        """Return SQLAlchemy's processor, fused into one function on SQLite's default text."""
        if not _sqlite_text(self, dialect):
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(NAIVE)
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """Return SQLAlchemy's processor, fused into one function on SQLite's default text."""
        if not _sqlite_text(self, dialect):
            return super().result_processor(dialect, coltype)
        parse: Any = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)

        def process(value: Any) -> datetime | None:
            return None if value is None else parse(value).replace(tzinfo=UTC)

        return process


def _sqlite_text(column: UTCDateTime, dialect: Dialect) -> bool:
    """Tell whether ``column`` is stored as SQLite's default datetime text on ``dialect``."""
    if dialect.name != "sqlite":
        return False
    impl = column.impl_instance.dialect_impl(dialect)
    return type(impl) is SQLITE_DATETIME and impl._storage_format == SQLITE_DATETIME._storage_format
