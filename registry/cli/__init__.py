"""The ``registry`` command line: one click group per domain (SPEC §5)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import click
from flask import Flask
from flask.cli import FlaskGroup

from registry.cli.serve import serve


def _create_app() -> Flask:
    # In the function: prometheus_client must load after main() sets PROMETHEUS_MULTIPROC_DIR.
    from registry import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def cli() -> None:
    """Anning registry: consent and do-not-disturb."""


# Outside the app's context: ``serve`` forks gunicorn, whose workers build their own app.
cli.add_command(serve)


def main() -> None:
    """Run the ``registry`` command.

    ``registry serve`` runs several gunicorn workers; their metrics are shared
    through files, which prometheus_client must know about before it is imported.
    """
    if sys.argv[1:2] == ["serve"] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="anning-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    cli()


def register(app: Flask) -> None:
    """Attach every command group to the app's CLI."""
    # In the function: the groups load every domain (and prometheus_client, see main()).
    from registry.cli import (
        access,
        admin,
        checks,
        consent,
        db,
        demo,
        numbers,
        orgs,
        scrubs,
        sms,
        sync,
    )

    for module in (access, admin, checks, consent, db, demo, numbers, orgs, scrubs, sms, sync):
        for command in module.COMMANDS:
            app.cli.add_command(command)
