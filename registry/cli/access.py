"""``registry connections``: the access relations carriers record (which organization, which address)."""

from __future__ import annotations

import click

from registry.access import services as access_services
from registry.audit import services as audit
from registry.cli.numbers import carrier_org
from registry.config import Settings, current_settings
from registry.errors import RegistryError
from registry.extensions import db
from registry.timeutil import iso


@click.group("connections")
def connections_group() -> None:
    """Access relations: which organizations a carrier connects, at which addresses."""


@connections_group.command("add")
@click.argument("carrier")
@click.argument("organization")
@click.option("--kind", type=click.Choice(["sms_port", "trunk", "enterprise_line"]), required=True)
@click.option("--address", "addresses", multiple=True, required=True, help="Repeat for each.")
def connections_add(carrier: str, organization: str, kind: str, addresses: tuple[str, ...]) -> None:
    """Record that CARRIER connects ORGANIZATION at each --address (attesting them)."""
    settings: Settings = current_settings()
    with db.session() as session:
        org = carrier_org(session, carrier)
        try:
            made = access_services.connect(
                session, org.id or 0, organization, kind, list(addresses),
                settings.default_region, "cli",
            )  # fmt: skip
        except RegistryError as exc:
            raise click.ClickException(exc.message) from exc
        for c in made:
            audit.record(session, None, "connection.add", f"connection:{c.id}", actor="cli")
        session.commit()
        for c in made:
            click.echo(f"{c.id}\t{org.slug}\t{organization}\t{kind}\t{c.address}")


@connections_group.command("list")
@click.option("--carrier", default=None, help="Only this carrier's connections.")
@click.option("--all", "everything", is_flag=True, help="Include withdrawn connections.")
def connections_list(carrier: str | None, everything: bool) -> None:
    """List connections: id, carrier, organization, kind, address, sender, since, state."""
    with db.session() as session:
        carrier_id = carrier_org(session, carrier).id if carrier else None
        rows = access_services.list_connections(session, carrier_id, include_withdrawn=everything)
        for r in rows:
            state = f"withdrawn {iso(r.withdrawn_at)}" if r.withdrawn_at else "live"
            click.echo(
                f"{r.id}\t{r.carrier}\t{r.organization}\t{r.kind}\t{r.address}\t"
                f"{r.sender or '-'}\t{iso(r.created_at)}\t{state}"
            )


@connections_group.command("withdraw")
@click.argument("connection_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--reason", default="", help="Why the connection ends.")
def connections_withdraw(connection_id: int, reason: str) -> None:
    """Withdraw a connection (the operator's act); its address is unusable from the next check."""
    with db.session() as session:
        try:
            row = access_services.withdraw(session, None, connection_id, "cli", reason)
        except RegistryError as exc:
            raise click.ClickException(exc.message) from exc
        audit.record(session, None, "connection.withdraw", f"connection:{row.id}", actor="cli")
        session.commit()
        click.echo(f"withdrew {row.id} ({row.address})")


COMMANDS = [connections_group]
