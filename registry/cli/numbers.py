"""``registry disconnections import``: load a carrier's file of disconnected numbers."""

from __future__ import annotations

import csv
import sys
from typing import TextIO

import click
from flask import current_app

from registry.events.services import Actor
from registry.extensions import db
from registry.numbers import services

CHUNK = 1_000


@click.group("disconnections")
def disconnections_group() -> None:
    """Number disconnections reported by carriers."""


@disconnections_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--carrier", default="cli", help="Who reported it (recorded in the event log).")
def import_file(file: TextIO, carrier: str) -> None:
    """Load a CSV of ``phone,disconnected_at``; bad rows are reported by line, good rows kept."""
    settings = current_app.config["REGISTRY"]
    rows: list[tuple[int, tuple[object, object]]] = []
    bad: list[str] = []
    for line_no, row in enumerate(csv.reader(file), start=1):
        if not row or not "".join(row).strip():
            continue
        if line_no == 1 and row[0].strip().lower() in ("phone", "number", "msisdn"):
            continue
        if len(row) < 2:
            bad.append(f"line {line_no}: expected phone,disconnected_at")
            continue
        rows.append((line_no, (row[0], row[1])))
    accepted = 0
    actor = Actor(f"carrier:{carrier}", "cli")
    with (
        db.session() as session,
        click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar,
    ):
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            taken, rejected = services.disconnect_many(
                session, settings, actor, [r for _, r in chunk]
            )
            session.commit()
            accepted += taken
            bad.extend(f"line {chunk[r.index][0]}: {r.error.message}" for r in rejected)
            bar.update(len(chunk))
    for message in bad:
        click.echo(message, err=True)
    click.echo(f"{accepted} disconnections recorded, {len(bad)} rows rejected")
    if bad and not accepted:
        sys.exit(1)


COMMANDS = [disconnections_group]
