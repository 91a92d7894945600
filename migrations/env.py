"""Alembic environment: the registry's metadata, batch mode for SQLite, type comparison."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import registry.models  # noqa: F401  (imports every table onto the metadata)
from registry.checks.partitions import PARTITION
from registry.database.naming import metadata

config = context.config


def include_name(name, type_, _parents) -> bool:  # type: ignore[no-untyped-def]
    """Leave the check log's partitions (PostgreSQL, migration 0022) out of autogenerate."""
    return not (type_ == "table" and name is not None and PARTITION.match(name))


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    """Run with a live connection."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        run_migrations(conn)
        conn.commit()
