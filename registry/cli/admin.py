"""``registry admin``, ``registry sanctions``, ``registry stats``: the regulator's commands."""

from __future__ import annotations

import time

import click

from registry.admin import accounts
from registry.admin.models import STAFF_ROLES
from registry.audit import services as audit
from registry.complaints import routing
from registry.complaints.sectors import SECTORS
from registry.config import current_settings
from registry.errors import RegistryError
from registry.extensions import db
from registry.sanctions import trigger
from registry.stats import services as stats
from registry.timeutil import utcnow


@click.group("admin")
def admin_group() -> None:
    """Regulator staff accounts."""


@admin_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(STAFF_ROLES), default="viewer", show_default=True)
@click.option("--sector", type=click.Choice(list(SECTORS)), default=None,
              help="The sector desk of the account (complaints of that industry).")  # fmt: skip
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help=f"At least {accounts.MIN_PASSWORD} characters (prompted when omitted).",
)
def admin_create(email: str, role: str, sector: str | None, password: str) -> None:
    """Create a staff account; print its TOTP secret and provisioning URI once."""
    with db.session() as session:
        try:
            new = accounts.create_staff(session, email, password, role, sector)
        except RegistryError as exc:
            raise click.ClickException(exc.message) from exc
        audit.record(session, None, "staff.create", f"staff:{new.user.id}",
                     {"email": new.user.email, "role": role, "sector": sector}, actor="cli")  # fmt: skip
        session.commit()
    click.echo(f"created {role} {new.user.email}")
    click.echo("add this account to an authenticator app (shown once):")
    click.echo(f"TOTP secret: {new.totp_secret}")
    click.echo(new.provisioning_uri)


@admin_group.command("list")
def admin_list() -> None:
    """List staff accounts."""
    with db.session() as session:
        now = utcnow()
        for user in accounts.list_staff(session):
            locked = " locked" if user.locked_until and user.locked_until > now else ""
            click.echo(f"{user.email}\t{user.role}{locked}")


@admin_group.command("unlock")
@click.argument("email")
def admin_unlock(email: str) -> None:
    """Lift a staff account's lock-out."""
    with db.session() as session:
        user = next(
            (u for u in accounts.list_staff(session) if u.email == email.strip().lower()), None
        )
        if user is None:
            raise click.ClickException(f"no staff account {email!r}")
        accounts.unlock(session, user)
        audit.record(session, None, "staff.unlock", f"staff:{user.id}", actor="cli")
        session.commit()
    click.echo(f"unlocked {email}")


@click.group("stats")
def stats_group() -> None:
    """Statistics rollups."""


@stats_group.command("refresh")
def stats_refresh() -> None:
    """Bring the statistics rollups up to date (run it from cron or the worker)."""
    started = time.perf_counter()
    with db.session() as session:
        result = stats.refresh(session, utcnow())
        session.commit()
    click.echo(
        f"read {result.checks_read} new checks, {result.holders} holders, "
        f"{result.dnd_days} days of DND changes in {time.perf_counter() - started:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in result.seconds.items())})"
    )


@click.group("sanctions")
def sanctions_group() -> None:
    """Sanctions."""


@sanctions_group.command("scan")
def sanctions_scan() -> None:
    """Flag (or suspend, when configured) senders with too many verified complaints."""
    s = current_settings()
    with db.session() as session:
        hits = trigger.run(session, s, utcnow())
        session.commit()
    for hit in hits:
        click.echo(f"{hit.sender_code}\t{hit.complaints} verified complaints\t{hit.action}")
    click.echo(
        f"{sum(h.action != 'already' for h in hits)} new; threshold {s.sanction_complaints} "
        f"in {s.sanction_days} days; auto-suspend {'on' if s.sanction_auto_suspend else 'off'}"
    )


@click.group("complaints")
def complaints_group() -> None:
    """Complaints."""


@complaints_group.command("sweep")
def complaints_sweep() -> None:
    """Flag overdue answers and escalate their complaints (working days; the worker runs it too)."""
    with db.session() as session:
        swept = routing.sweep(session, current_settings(), utcnow())
        session.commit()
    click.echo(f"{len(swept.routes)} answers newly overdue; {len(swept.escalated)} escalated")


COMMANDS = [admin_group, sanctions_group, stats_group, complaints_group]
