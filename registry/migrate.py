"""Alembic, driven from the app's settings: upgrade to head, check for drift."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from registry.layout import shipped

MIGRATIONS = shipped("migrations")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """Return an Alembic config for the registry's migrations and this database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, connection: Connection | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision``."""
    command.upgrade(alembic_config(url, connection), revision)


def check(url: str, connection: Connection | None = None) -> None:
    """Raise if the models and the migrations differ (``alembic check``)."""
    command.check(alembic_config(url, connection))
