"""Rollup tables: small, pre-aggregated counts the statistics pages read."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from registry.timeutil import UTCDateTime, utcnow


class StatDaily(SQLModel, table=True):
    """A count for one metric, day and pair of keys (e.g. checks, day, org 3, "deny:dnd")."""

    __tablename__ = "stat_daily"

    metric: str = Field(max_length=32, primary_key=True)
    day: date = Field(primary_key=True)
    key1: str = Field(max_length=64, primary_key=True, default="")
    key2: str = Field(max_length=64, primary_key=True, default="")
    value: int = Field(default=0, sa_type=BigInteger)


class StatWatermark(SQLModel, table=True):
    """How far a rollup has read an append-only source table (its last id)."""

    __tablename__ = "stat_watermark"

    source: str = Field(max_length=32, primary_key=True)
    last_id: int = Field(default=0, sa_type=BigInteger)
    refreshed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatGap(SQLModel, table=True):
    """A run of ids below a watermark that were not yet visible when the rollup read past them.

    A check log id is taken from a sequence when the row is inserted, but the row
    is only visible once its transaction commits: a batch still inside its COPY
    holds ids below rows that other checks have already committed. The refresh
    records such runs here and counts their rows when they appear; a run never
    filled (a rolled-back transaction) is dropped after ``GAP_HORIZON``.
    """

    __tablename__ = "stat_gap"

    source: str = Field(max_length=32, primary_key=True)
    low: int = Field(primary_key=True, sa_type=BigInteger)
    high: int = Field(sa_type=BigInteger)
    noted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
