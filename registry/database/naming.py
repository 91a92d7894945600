"""The constraint naming convention and the column types every model shares.

Imported (through ``registry.database``) before any table is defined, so that
Alembic's autogenerate and batch mode on SQLite see the same constraint names.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData
from sqlmodel import SQLModel

# One naming convention so that Alembic's autogenerate and batch mode on
# SQLite produce stable constraint names on both databases.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata
# Ids of tables that grow with the population (consents, opt-outs, events,
# checks...) are BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is
# the rowid alias, which is 64-bit anyway.
BigId = BigInteger().with_variant(Integer(), "sqlite")
