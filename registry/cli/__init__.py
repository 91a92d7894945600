"""The ``registry`` command line: one click group per domain (SPEC §5)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup


def _create_app() -> Flask:
    from registry import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """Anning registry: consent and do-not-disturb."""


def register(app: Flask) -> None:
    """Attach every command group to the app's CLI."""
    from registry.cli import admin, checks, db, demo, numbers, orgs, serve, sms

    for module in (admin, checks, db, demo, numbers, orgs, serve, sms):
        for command in module.COMMANDS:
            app.cli.add_command(command)
