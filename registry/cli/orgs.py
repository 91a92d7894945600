"""``registry org``, ``registry key``, ``registry sender``: who may use the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from registry.config import current_settings
from registry.errors import RegistryError
from registry.extensions import db
from registry.numbers.services import parse_time
from registry.orgs import delegations, filings
from registry.orgs import services as orgs
from registry.orgs.filings import Filing
from registry.orgs.models import BUSINESS_TYPES, KINDS, ROLES, SCOPES, Delegation
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
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="merchant",
    show_default=True,
    help="What it is in the chain; call centers and SMS ports must file each delegated business.",
)
def org_create(
    slug: str, name: str, role: str, credit_code: str | None, region: str | None, kind: str
) -> None:
    """Create an organization."""
    with db.session() as session:
        try:
            org = orgs.create_org(session, slug, name, role, credit_code, region, kind)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        code = f", credit code {org.credit_code}" if org.credit_code else ""
        click.echo(f"created organization {org.slug} ({org.role}, {org.kind}{code})")


@org_group.command("kind")
@click.argument("slug")
@click.argument("kind", type=click.Choice(KINDS))
def org_kind(slug: str, kind: str) -> None:
    """Say what an organization is in the chain (merchant, call_center, sms_port...)."""
    with db.session() as session:
        try:
            org = orgs.set_kind(session, orgs.get_org(session, slug), kind)
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"{org.slug}: {org.kind}")


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


FILING_OPTIONS = ("business_name", "business_type", "address", "targets", "content",
                  "contact_name", "contact_phone")  # fmt: skip


def _filing_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the business filing's options (业务备案) to a command."""
    options = [
        click.option("--business-name", default=None, help="The outsourced business's name."),
        click.option("--business-type", type=click.Choice(BUSINESS_TYPES), default=None),
        click.option("--address", multiple=True, help="Outbound number or SMS port; repeat."),
        click.option("--targets", default=None, help="Whom the business contacts."),
        click.option("--content", default=None, help="What it tells them."),
        click.option("--contact-name", default=None, help="The contact person."),
        click.option("--contact-phone", default=None, help="The contact's telephone."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filing(values: dict[str, Any]) -> Filing | None:
    """Return the filing the options give, or None when none was given."""
    if not any(values.get(name) for name in FILING_OPTIONS):
        return None
    return Filing(
        values.get("business_name") or "", values.get("business_type") or "",
        list(values.get("address") or ()), values.get("targets") or "",
        values.get("content") or "", values.get("contact_name") or "",
        values.get("contact_phone") or "",
    )  # fmt: skip


@delegation_group.command("grant")
@click.argument("principal")
@click.argument("agent")
@click.option("--sender", "senders_", multiple=True, required=True, help="Sender code; repeat.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option(
    "--expires-at", default=None, help="ISO 8601 time; without offset, REGISTRY_TIMEZONE."
)
@_filing_options
def delegation_grant(
    principal: str,
    agent: str,
    senders_: tuple[str, ...],
    scopes: tuple[str, ...],
    expires_at: str | None,
    **filing: Any,
) -> None:
    """Let AGENT act for PRINCIPAL's senders within the scopes (with the business filing)."""

    settings = current_settings()
    with db.session() as session:
        try:
            org = orgs.get_org(session, principal)
            expires = parse_time(expires_at, settings) if expires_at else None
            delegation = delegations.grant(
                session, org.id or 0, agent, list(senders_), list(scopes), expires,
                _filing(filing), settings.default_region,
            )  # fmt: skip
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
            filed: Any = d["filing"]
            if filed:
                business = f"{filed['business_name']} ({filed['business_type']}) from " + ",".join(
                    filed["addresses"]
                )
            else:
                business = "NOT FILED" if d["filing_required"] else "-"
            click.echo(
                f"{d['id']}\t{d['principal']} -> {d['agent']}\t{','.join(d['senders'])}\t"  # type: ignore[arg-type]
                f"{','.join(d['scopes'])}\t{state}\t{business}"  # type: ignore[arg-type]
            )


@delegation_group.command("file")
@click.argument("principal")
@click.argument("delegation_id", type=int)
@_filing_options
def delegation_file(principal: str, delegation_id: int, **filing: Any) -> None:
    """File or alter the business of PRINCIPAL's delegation (only its principal may)."""

    values = _filing(filing)
    if values is None:
        raise click.UsageError("give the filing: --business-name, --business-type, --address ...")
    with db.session() as session:
        try:
            org = orgs.get_org(session, principal)
            filings.file(
                session, org.id or 0, delegation_id, values,
                current_settings().default_region,
            )  # fmt: skip
        except RegistryError as exc:
            raise _fail(exc) from exc
        session.commit()
        click.echo(f"filed the business of delegation {delegation_id}: {values.business_name}")


@delegation_group.command("revoke")
@click.argument("delegation_id", type=int)
def delegation_revoke(delegation_id: int) -> None:
    """Revoke a delegation at once."""
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
