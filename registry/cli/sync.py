"""``registry worker`` and ``registry audit``: background jobs and the event log's integrity."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import click

from registry.cli.stopping import stop_on_signals
from registry.config import current_settings
from registry.events import audit
from registry.extensions import db
from registry.sync import worker as jobs
from registry.sync.webhooks import DeliveryPolicy


@click.command("worker")
@click.option("--interval", default=0.5, show_default=True, help="Seconds to sleep when idle.")
@click.option("--once", is_flag=True, help="Run every job once and exit.")
@click.option("--batch", default=100, show_default=True, help="Changes per webhook delivery.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds a receiver may take.")
@click.option("--backoff", default=5.0, show_default=True, help="First retry delay, doubled after each failure.")  # fmt: skip
@click.option("--backoff-max", default=3600.0, show_default=True)
@click.option("--disable-after", default=3 * 24 * 3600.0, show_default=True, help="Seconds of failure before a hook is disabled.")  # fmt: skip
def worker(
    interval: float,
    once: bool,
    batch: int,
    timeout: float,
    backoff: float,
    backoff_max: float,
    disable_after: float,
) -> None:
    """Run the background jobs: feed sequencing, webhooks, SMS delivery, consent expiry;
    every 15 minutes the sanction trigger and the statistics rollups."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = current_settings()
    policy = DeliveryPolicy(batch, timeout, backoff, backoff_max, timedelta(seconds=disable_after))
    if once:
        done = jobs.tick(db.session, settings, policy)
        click.echo(
            f"sequenced {done.sequenced}, delivered {done.delivered} batches, "
            f"{done.failed} failed, {done.sms_sent} texts, {done.expired} consents expired"
        )
        if done.errors:
            raise click.ClickException("; ".join(done.errors))
        return
    stopping = stop_on_signals()
    click.echo("worker running (Ctrl-C to stop)")
    sys.stdout.flush()
    jobs.run(db.session, settings, policy, interval=interval, stop=stopping)


@click.group("audit")
def audit_group() -> None:
    """Check the tamper-evident event log."""


@audit_group.command("verify")
def verify() -> None:
    """Walk every phone's hash chain; name the first broken link and fail if there is one."""
    with db.session() as session:
        report = audit.verify(session)
    if report.broken is not None:
        b = report.broken
        click.echo(f"BROKEN: phone {b.phone}, event {b.event_id}: {b.reason}", err=True)
        raise SystemExit(1)
    click.echo(
        f"ok: {report.events} events on {report.phones} numbers; heads digest {report.digest}"
    )


COMMANDS = [worker, audit_group]
