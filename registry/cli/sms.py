"""``registry sms``: the outbox of the console backend, and delivery through the gateway."""

from __future__ import annotations

import click

from registry import phones
from registry.config import current_settings
from registry.extensions import db
from registry.sms import services
from registry.timeutil import iso


@click.group("sms")
def sms_group() -> None:
    """Text messages the registry sends."""


@sms_group.command("outbox")
@click.option("--phone", default=None, help="Only messages to this number.")
@click.option("--limit", default=20, show_default=True)
def outbox(phone: str | None, limit: int) -> None:
    """Show the newest messages the registry sent (the console backend's outbox)."""
    settings = current_settings()
    if phone is not None:
        try:
            phone = phones.to_e164(phone, settings.default_region)
        except phones.InvalidPhone as exc:
            raise click.ClickException(str(exc)) from exc
    with db.session() as session:
        for m in services.outbox(session, phone, limit):
            # The gateway's last delivery report, where one came (Kannel's dlr-url, a cloud's).
            state = f", {m.delivery}" if m.delivery else ""
            click.echo(f"{iso(m.created_at)}  {m.phone}  [{m.kind}, {m.status}{state}]  {m.body}")


@sms_group.command("deliver")
@click.option("--limit", default=1000, show_default=True)
def deliver(limit: int) -> None:
    """Deliver queued messages through the configured backend (retries failed ones when due)."""
    with db.session() as session:
        sent, failed = services.deliver(session, current_settings(), limit)
    click.echo(f"{sent} sent, {failed} failed (will retry)")


COMMANDS = [sms_group]
