"""The schema is ready to distribute by phone (registry/shards.py, docs/scaling.md).

PostgreSQL refuses a primary key or unique constraint on a hash-partitioned
table that does not hold the partition key, as a sharded database (Citus)
refuses one that does not hold the distribution column. So, on PostgreSQL,
each distributed table of the migrated schema gets a twin partitioned by hash
of its distribution column, with every key and index copied: a key without
the phone fails here. And no foreign key may link two distributed tables.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import UniqueConstraint, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry import shards
from registry.database.naming import metadata
from tests import hashparts


def _twin(session: Session, table: str, column: str) -> str | None:
    """Make ``table``'s hash-partitioned twin in a savepoint; return PostgreSQL's refusal, if any."""
    try:
        with session.begin_nested():
            session.execute(
                text(
                    f'CREATE TABLE "{table}_twin" (LIKE "{table}" INCLUDING ALL) '
                    f'PARTITION BY HASH ("{column}")'
                )
            )
            session.execute(
                text(
                    f'CREATE TABLE "{table}_twin_0" PARTITION OF "{table}_twin" '
                    "FOR VALUES WITH (MODULUS 1, REMAINDER 0)"
                )
            )
    except DBAPIError as exc:
        return str(exc.orig).splitlines()[0]
    return None


def _postgresql(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("hash partitioning is PostgreSQL's")


def test_every_table_is_distributed_copied_or_kept_on_the_coordinator() -> None:
    listed = [*shards.DISTRIBUTED, *shards.REFERENCE, *shards.COORDINATOR]
    assert sorted(listed) == sorted(metadata.tables), "classify every table in registry/shards.py"
    assert len(set(listed)) == len(listed)


def test_no_foreign_key_links_two_distributed_tables() -> None:
    links = [
        (name, fk.column.table.name)
        for name in shards.DISTRIBUTED
        for fk in metadata.tables[name].foreign_keys
        if fk.column.table.name in shards.DISTRIBUTED
    ]
    assert links == []


def test_every_unique_key_of_a_distributed_table_holds_its_column() -> None:
    # The primary keys are checked on PostgreSQL below (SQLite keeps the rowid ``id``).
    missing = []
    for name, column in shards.DISTRIBUTED.items():
        table = metadata.tables[name]
        uniques = [(i.name, [c.name for c in i.columns]) for i in table.indexes if i.unique]
        uniques += [
            (c.name, [col.name for col in c.columns])
            for c in table.constraints
            if isinstance(c, UniqueConstraint)
        ]
        missing += [(name, key) for key, cols in uniques if column not in cols]
    assert missing == []


def test_every_distributed_table_can_be_hash_partitioned_by_its_column(session: Session) -> None:
    _postgresql(session)
    refused = {
        name: reason
        for name, column in shards.DISTRIBUTED.items()
        if (reason := _twin(session, name, column)) is not None
    }
    assert refused == {}


def test_a_table_with_a_global_key_is_refused(session: Session) -> None:
    # The check above can fail: a key without the phone is refused.
    _postgresql(session)
    session.execute(text("CREATE TABLE global_key (id BIGINT PRIMARY KEY, phone TEXT NOT NULL)"))
    refusal = "unique constraint on partitioned table must include all partitioning columns"
    assert _twin(session, "global_key", "phone") == refusal
    session.execute(text("CREATE TABLE global_unique (id BIGINT, phone TEXT, UNIQUE (id))"))
    assert _twin(session, "global_unique", "phone") == refusal
    session.execute(text("CREATE TABLE phone_key (id BIGINT, phone TEXT, PRIMARY KEY (id, phone))"))
    assert _twin(session, "phone_key", "phone") is None


def test_the_database_has_no_foreign_key_between_distributed_tables(session: Session) -> None:
    _postgresql(session)
    rows = session.execute(
        text(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f'"
        )
    ).all()
    # A distributed table points only at reference tables (copied to every shard).
    targets = {b for a, b in rows if a in shards.DISTRIBUTED}
    assert targets <= set(shards.REFERENCE), targets - set(shards.REFERENCE)


def test_the_hash_partitioned_mode_partitions_every_distributed_table(session: Session) -> None:
    # With REGISTRY_TEST_HASH_PARTITIONED the suite runs on the rebuilt tables (tests/hashparts.py).
    _postgresql(session)
    if not os.environ.get(hashparts.ENV):
        pytest.skip(f"set {hashparts.ENV}=1 to run the suite on hash-partitioned tables")
    rows = session.execute(
        text(
            "SELECT c.relname, p.partstrat, a.attname FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
        )
    ).all()
    by_hash = {name: column for name, strategy, column in rows if strategy == "h"}
    assert by_hash == shards.DISTRIBUTED
