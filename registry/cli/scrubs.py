"""``registry scrub-worker``: answer the file scrubs uploaded through the API."""

from __future__ import annotations

import logging
import signal
import sys
import time
from datetime import timedelta
from types import FrameType

import click

from registry.api.gates import check_budget
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
    stopping = False

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"scrub worker {name} running (Ctrl-C to stop)")
    sys.stdout.flush()
    jobs = scrubs.work(
        db.session, settings, name,
        lambda who, sender, channel: check_budget(sender, channel, who),
        lease=timedelta(seconds=lease), stop=lambda: stopping, once=once,
        idle=lambda: time.sleep(interval),
    )  # fmt: skip
    click.echo(f"{jobs} scrub jobs run")


COMMANDS = [scrub_worker]
