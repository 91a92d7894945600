"""``registry consents``: consent housekeeping (expiry, re-deriving state from events)."""

from __future__ import annotations

import click

from registry.config import current_settings
from registry.consent import derivation, refusals
from registry.consent import services as consents
from registry.extensions import db


@click.group("consents")
def consents_group() -> None:
    """Consent housekeeping."""


@consents_group.command("expire")
def expire() -> None:
    """Mark consents past their expiry (or unconfirmed past the pending period) as expired."""
    with db.session() as session:
        count = consents.expire_due(session)
        session.commit()
    click.echo(f"{count} consents expired")


@consents_group.command("rederive")
@click.option("--fix", is_flag=True, help="Repair rows that differ from their events.")
def rederive(fix: bool) -> None:
    """Check that every consent's state is what its events imply."""
    with db.session() as session:
        diffs = derivation.rederive(session, fix=fix)
        if fix:
            session.commit()
    for consent_id, field, stored, derived in diffs:
        click.echo(f"consent {consent_id}: {field} is {stored!r}, events say {derived!r}")
    click.echo(f"{len(diffs)} differences{' repaired' if fix and diffs else ''}")
    if diffs and not fix:
        raise SystemExit(1)


@click.group("refusals")
def refusals_group() -> None:
    """Refusals the holder set for a time (do-not-disturb, category and sender blocks)."""


@refusals_group.command("run")
def refusals_run() -> None:
    """Text holders whose refusals end within a week; take ended refusals off the record."""
    with db.session() as session:
        done = refusals.run(session, current_settings())
        session.commit()
    click.echo(f"{done.reminded} reminders sent, {done.lifted} refusals ended")


COMMANDS = [consents_group, refusals_group]
