"""``registry serve``: run the registry under gunicorn (optionally with demo data).

The command is a built-in of the ``registry`` group, not one of the app's
commands: Flask pushes an app context around app commands, and gunicorn's
workers, forked from this process, would inherit it, so one ``g`` (CSRF
tokens, the chosen language) would live across every request a worker
serves. Here the master builds an app only to check the settings and fill
the demo, inside a context it leaves before gunicorn starts; each worker
then builds its own app after the fork and Flask gives every request a
fresh context.
"""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask
from sqlalchemy import func, select

from registry import migrate
from registry.config import current_settings
from registry.extensions import db
from registry.orgs.models import Organization

# What gunicorn refuses before the app is called (it answers with its own
# plain page; see docs/security.md "What sits in front of the app"). Each limit
# is above the one the app applies (registry/edge.py), so a request the app
# can refuse in the JSON envelope reaches it; only requests beyond these bounds,
# which would cost memory before any code of ours runs, stop at gunicorn.
LIMIT_REQUEST_LINE = 8190  # bytes: gunicorn's maximum; the app answers 414 above 4096
LIMIT_REQUEST_FIELD_SIZE = 16384  # bytes per header; the app answers 431 above 8192
LIMIT_REQUEST_FIELDS = 100  # header fields (gunicorn's default, said deliberately)


def gunicorn_options(host: str, port: int, workers: int | None, access_log: bool) -> dict[str, Any]:
    """Return the gunicorn settings ``registry serve`` runs with."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers or (os.cpu_count() or 1) * 2,
        "timeout": 60,
        "graceful_timeout": 20,
        "accesslog": "-" if access_log else None,
        "preload_app": False,  # each worker builds its own app (and connections) after the fork
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "child_exit": _child_exit,
    }


def _create_app() -> Flask:
    # In the function: prometheus_client must load after main() sets PROMETHEUS_MULTIPROC_DIR.
    from registry import create_app

    return create_app()


def _gunicorn(options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return _create_app()  # in the worker, after the fork: no context inherited

    Server().run()


def _child_exit(_server: object, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _demo(app: Flask, host: str, port: int) -> None:
    """Migrate, fill an empty database with the demo, and print how to use it."""
    from registry.cli.demo import fill, key_file  # in the function: as create_app, after main()

    settings = current_settings(app)
    migrate.upgrade(settings.database_url)
    with db.session() as session:
        if not session.scalar(select(func.count()).select_from(Organization)):
            fill(session, settings, app.instance_path)
            session.commit()
    path = key_file(app.instance_path)
    key = path.read_text().strip() if path.exists() else "<run `registry key create acme-bank`>"
    url = f"http://{host}:{port}"
    click.echo(
        f"\nAnning registry: {url}/  (API docs: {url}/api/v1/docs)\n"
        f"demo API key (acme-bank): {key}\n"
        f"try a check:\n"
        f"  curl -s -X POST {url}/api/v1/check -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"phone": "+86 131 0000 0001", "sender": "acme-cards", "channel": "sms"}}\'\n'
        f"demo login number for the site: +8613100000001 (codes: `.venv/bin/registry sms outbox`)\n"
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=None, type=int, help="Default: two per core.")
@click.option(
    "--demo", is_flag=True, help="Migrate and fill an empty database with demo data first."
)
@click.option("--access-log/--no-access-log", default=True)
def serve(host: str, port: int, workers: int | None, demo: bool, access_log: bool) -> None:
    """Serve the registry with gunicorn."""
    app = _create_app()  # checks every setting before anything is forked
    with app.app_context():
        if demo:
            _demo(app, host, port)
        db.dispose()  # workers open their own connections after the fork
    _gunicorn(gunicorn_options(host, port, workers, access_log))
