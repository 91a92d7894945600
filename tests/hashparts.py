"""The suite on a schema distributed by phone: ``REGISTRY_TEST_HASH_PARTITIONED=1`` (PostgreSQL).

After the migrations, each distributed table (registry/shards.py) is rebuilt
partitioned by hash of its distribution column, in four partitions, with the
same columns, defaults, keys, indexes and foreign keys under the same names:
what a sharded database would hold, one partition standing for one shard. A
key without the phone is refused here, and the tests that run on it show the
application works on it. The migration drift check does not hold in this
mode (partitions are tables, and partitioning is not in the models).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from registry import shards

PARTS = 4
ENV = "REGISTRY_TEST_HASH_PARTITIONED"


def _definitions(conn: Connection, table: str) -> tuple[list[str], list[str]]:
    """Return ``table``'s constraints (keys, checks, foreign keys), then its other indexes and triggers, as DDL."""
    constraints = [
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
        for name, definition in conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u', 'f') "
                "ORDER BY contype DESC, conname"
            ),
            {"t": table},
        )
    ]
    indexes = [
        definition.replace(" ON ONLY ", " ON ")
        for (definition,) in conn.execute(
            text(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
                "WHERE i.indrelid = CAST(:t AS regclass) AND c.oid IS NULL"
            ),
            {"t": table},
        )
    ]
    triggers = [
        definition
        for (definition,) in conn.execute(
            text(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal ORDER BY tgname"
            ),
            {"t": table},
        )
    ]
    return constraints, [*indexes, *triggers]


def partition_by_hash(conn: Connection) -> None:
    """Rebuild every distributed table hash-partitioned by its distribution column."""
    for table, column in shards.DISTRIBUTED.items():
        constraints, indexes = _definitions(conn, table)
        owned = conn.execute(
            text(
                "SELECT s.relname, a.attname FROM pg_depend d "
                "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
                "WHERE d.refobjid = CAST(:t AS regclass) AND d.deptype = 'a'"
            ),
            {"t": table},
        ).all()
        conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{table}_plain"'))
        conn.execute(
            text(
                f'CREATE TABLE "{table}" (LIKE "{table}_plain" INCLUDING DEFAULTS '
                f'INCLUDING CONSTRAINTS) PARTITION BY HASH ("{column}")'
            )
        )
        for n in range(PARTS):
            conn.execute(
                text(
                    f'CREATE TABLE "{table}_h{n}" PARTITION OF "{table}" '
                    f"FOR VALUES WITH (MODULUS {PARTS}, REMAINDER {n})"
                )
            )
        for sequence, col in owned:
            conn.execute(text(f'ALTER SEQUENCE "{sequence}" OWNED BY "{table}"."{col}"'))
        conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{table}_plain"'))
        conn.execute(text(f'DROP TABLE "{table}_plain"'))
        for statement in (*constraints, *indexes):
            conn.execute(text(statement))
