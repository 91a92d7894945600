"""``registry org``, ``registry key``, ``registry sender``: who may use the registry."""

from __future__ import annotations

import click

from registry.errors import RegistryError
from registry.extensions import db
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.orgs.models import ROLES, SCOPES
from registry.senders import services as senders
from registry.senders.models import CATEGORIES


def _fail(exc: RegistryError) -> click.ClickException:
    return click.ClickException(exc.message)


@click.group("org")
def org_group() -> None:
    """Organizations."""


@org_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The organization's legal or display name.")
@click.option("--role", type=click.Choice(ROLES), default="sender", show_default=True)
@click.option(
    "--credit-code", default=None, help="统一社会信用代码: 18 characters (GB 32100-2015)."
)
@click.option("--region", default=None, help="Province or region.")
def org_create(
    slug: str, name: str, role: str, credit_code: str | None, region: str | None
) -> None:
    """Create an organization."""
    with db.session() as session:
        try:
            org = orgs.create_org(session, slug, name, role, credit_code, region)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        code = f", credit code {org.credit_code}" if org.credit_code else ""
        click.echo(f"created organization {org.slug} ({org.role}{code})")


@org_group.command("identity")
@click.argument("slug")
@click.option("--credit-code", default="", help="统一社会信用代码; empty clears it.")
@click.option("--region", default="", help="Province or region; empty clears it.")
def org_identity(slug: str, credit_code: str, region: str) -> None:
    """Set an organization's unified social credit code and region."""
    with db.session() as session:
        try:
            org = orgs.get_org(session, slug)
            orgs.set_identity(session, org, credit_code, region)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"{org.slug}: credit code {org.credit_code or '-'}, region {org.region or '-'}")


@click.group("key")
def key_group() -> None:
    """API keys."""


@key_group.command("create")
@click.argument("slug")
@click.option("--name", default="", help="A label for the key.")
def key_create(slug: str, name: str) -> None:
    """Create an API key; the key alone is the last line printed."""
    with db.session() as session:
        try:
            org = orgs.get_org(session, slug)
            row, key = orgs.create_key(session, org, name)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"key {row.prefix} for {slug}; store it now, it is not shown again:", err=True)
        click.echo(key)


@key_group.command("revoke")
@click.argument("prefix")
def key_revoke(prefix: str) -> None:
    """Revoke an API key by its prefix."""
    with db.session() as session:
        try:
            orgs.revoke_key(session, prefix)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"revoked key {prefix}")


@click.group("sender")
def sender_group() -> None:
    """Senders."""


@sender_group.command("create")
@click.argument("slug")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--category", type=click.Choice(CATEGORIES), required=True)
@click.option("--address", "addresses", multiple=True, help="Caller number or SMS port; repeat.")
def sender_create(
    slug: str, code: str, name: str, category: str, addresses: tuple[str, ...]
) -> None:
    """Register a sender for an organization."""
    with db.session() as session:
        try:
            org = orgs.get_org(session, slug)
            sender, _ = senders.create_sender(
                session, org.id or 0, code, name, category, list(addresses)
            )
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"created sender {sender.code} for {slug}")


COMMANDS = [org_group, key_group, sender_group]


@click.group("delegation")
def delegation_group() -> None:
    """Delegations: agents acting for a principal's senders."""


@delegation_group.command("grant")
@click.argument("principal")
@click.argument("agent")
@click.option("--sender", "senders_", multiple=True, required=True, help="Sender code; repeat.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option(
    "--expires-at", default=None, help="ISO 8601 time; without offset, REGISTRY_TIMEZONE."
)
def delegation_grant(
    principal: str,
    agent: str,
    senders_: tuple[str, ...],
    scopes: tuple[str, ...],
    expires_at: str | None,
) -> None:
    """Let AGENT act for PRINCIPAL's senders within the scopes."""
    from flask import current_app

    from registry.numbers.services import parse_time

    with db.session() as session:
        try:
            org = orgs.get_org(session, principal)
            expires = parse_time(expires_at, current_app.config["REGISTRY"]) if expires_at else None
            delegation = delegations.grant(
                session, org.id or 0, agent, list(senders_), list(scopes), expires
            )
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(
            f"delegation {delegation.id}: {agent} may {', '.join(sorted(set(scopes)))} for {principal}"
        )


@delegation_group.command("list")
@click.argument("slug")
def delegation_list(slug: str) -> None:
    """List the delegations an organization granted or received."""
    with db.session() as session:
        try:
            org = orgs.get_org(session, slug)
        except RegistryError as exc:
            raise _fail(exc) from exc
        for d in delegations.describe(session, delegations.list_for(session, org.id or 0)):
            state = "active" if d["active"] else "inactive"
            click.echo(
                f"{d['id']}\t{d['principal']} -> {d['agent']}\t{','.join(d['senders'])}\t"  # type: ignore[arg-type]
                f"{','.join(d['scopes'])}\t{state}"  # type: ignore[arg-type]
            )


@delegation_group.command("revoke")
@click.argument("delegation_id", type=int)
def delegation_revoke(delegation_id: int) -> None:
    """Revoke a delegation at once."""
    from registry.orgs.models import Delegation

    with db.session() as session:
        delegation = session.get(Delegation, delegation_id)
        if delegation is None:
            raise click.ClickException(f"no delegation {delegation_id}")
        try:
            delegations.revoke(session, delegation.principal_id, delegation_id)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"revoked delegation {delegation_id}")


COMMANDS.append(delegation_group)
