"""``registry db``: migrate and check the schema."""

from __future__ import annotations

import click

from registry import migrate
from registry.config import current_settings


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
def upgrade() -> None:
    """Migrate the database to the newest schema."""
    migrate.upgrade(current_settings().database_url)
    click.echo("database is at the newest schema")


@db_group.command("check")
def check() -> None:
    """Fail if the models and the migrations differ."""
    from alembic.util.exc import CommandError

    try:
        migrate.check(current_settings().database_url)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("models and migrations agree")


COMMANDS = [db_group]
