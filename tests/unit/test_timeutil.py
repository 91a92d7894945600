"""Times: ``iso`` and ``UTCDateTime``'s fused SQLite processors equal what they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import DateTime, types
from sqlalchemy.dialects import postgresql, sqlite

from registry.timeutil import UTCDateTime, iso

TIMES = [
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 1, 22, 37, 5, tzinfo=UTC),
    datetime(2026, 12, 1, 22, 37, 5, 123456, tzinfo=UTC),
    datetime(2026, 12, 1, 6, 0, 0, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
    datetime(2030, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=8))),
    datetime(2030, 1, 15, 12, 0, tzinfo=timezone(timedelta(0))),  # UTC, but not UTC itself
    datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/New_York")),
]


class _Stock(types.TypeDecorator[datetime]):
    """``UTCDateTime`` as SQLAlchemy's own decorator would process it (no fused processors)."""

    impl = DateTime
    cache_ok = True
    process_bind_param = UTCDateTime.process_bind_param
    process_result_value = UTCDateTime.process_result_value


@pytest.mark.parametrize("value", TIMES)
def test_iso_is_the_utc_time_with_a_z(value: datetime) -> None:
    assert iso(value) == value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("value", [*TIMES, None])
def test_sqlite_processors_equal_sqlalchemys(value: datetime | None) -> None:
    dialect = sqlite.dialect()  # as SQLAlchemy (and Prepared) ask: the dialect's own copy
    ours, stock = UTCDateTime().dialect_impl(dialect), _Stock().dialect_impl(dialect)
    text = ours.bind_processor(dialect)(value)
    assert text == stock.bind_processor(dialect)(value)
    back = ours.result_processor(dialect, None)(text)
    assert back == stock.result_processor(dialect, None)(text)
    if value is not None:
        assert back == value
        assert back.tzinfo is UTC


def test_sqlite_result_reads_text_written_without_microseconds() -> None:
    dialect = sqlite.dialect()
    read = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert read("2026-01-01 00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_naive_time_is_refused_before_the_database() -> None:
    dialect = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    with pytest.raises(ValueError, match="naive datetime"):
        bind(datetime(2026, 1, 1))


def test_other_databases_keep_sqlalchemys_processors() -> None:
    dialect = postgresql.dialect()
    value = TIMES[3]
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert (
        bind(value)
        == _Stock().dialect_impl(dialect).bind_processor(dialect)(value)
        == datetime(2026, 11, 30, 22, 0, 0, 1)
    )
    with pytest.raises(ValueError, match="naive datetime"):
        bind(datetime(2026, 1, 1))
