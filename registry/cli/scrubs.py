"""``registry scrub-worker``: answer the file scrubs uploaded through the API."""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

import click

from registry.api.gates import check_budget
from registry.cli.stopping import stop_on_signals
from registry.config import current_settings
from registry.extensions import db
from registry.scrubs import worker as scrubs


@click.command("scrub-worker")
@click.option("--interval", default=1.0, show_default=True, help="Seconds to sleep when idle.")
@click.option("--lease", default=60.0, show_default=True, help="Seconds a claim holds without progress; a dead worker's job is taken over after it.")  # fmt: skip
@click.option("--once", is_flag=True, help="Run every claimable job, then exit.")
def scrub_worker(interval: float, lease: float, once: bool) -> None:
    """Claim scrub jobs with a lease and answer them chunk by chunk (run as many as wanted)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = current_settings()
    name = scrubs.worker_name()
    stopping = stop_on_signals()
    click.echo(f"scrub worker {name} running (Ctrl-C to stop)")
    sys.stdout.flush()
    jobs = scrubs.work(
        db.session, settings, name,
        lambda who, sender, channel: check_budget(sender, channel, who),
        lease=timedelta(seconds=lease), stop=stopping, once=once,
        idle=lambda: time.sleep(interval),
    )  # fmt: skip
    click.echo(f"{jobs} scrub jobs run")


COMMANDS = [scrub_worker]
