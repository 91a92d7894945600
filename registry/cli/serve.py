"""``registry serve``: run the registry under gunicorn (optionally with demo data)."""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from registry import migrate
from registry.extensions import db
from registry.orgs.models import Organization


def _gunicorn(app: Flask, options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    Server().run()


def _child_exit(_server: object, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


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
    settings = current_app.config["REGISTRY"]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if demo:
        from registry.cli.demo import fill, key_file

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
    db.dispose()  # workers open their own connections after the fork
    _gunicorn(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers or (os.cpu_count() or 1) * 2,
            "timeout": 60,
            "graceful_timeout": 20,
            "accesslog": "-" if access_log else None,
            "preload_app": False,
            "child_exit": _child_exit,
        },
    )


COMMANDS = [serve]
