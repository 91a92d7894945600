"""``registry disconnections`` and ``registry ranges``: carriers' number ranges and their reports."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from sqlalchemy.orm import Session

from registry import phones
from registry.audit import services as audit
from registry.config import current_settings
from registry.errors import RegistryError
from registry.events.services import Actor
from registry.extensions import db
from registry.numbers import ranges, services
from registry.orgs.models import Organization
from registry.orgs.services import get_org
from registry.timeutil import iso

CHUNK = 1_000


def _fail(exc: RegistryError) -> click.ClickException:
    return click.ClickException(exc.message)


def carrier_org(session: Session, slug: str) -> Organization:
    """Return the carrier organization ``slug``; a usage error (exit 2) otherwise."""
    try:
        org = get_org(session, slug.strip())
    except RegistryError as exc:
        raise click.BadParameter(exc.message, param_hint="--carrier") from exc
    if org.role != "carrier":
        raise click.BadParameter(
            f"{org.slug} is not a carrier (role {org.role})", param_hint="--carrier"
        )
    return org


@click.group("disconnections")
def disconnections_group() -> None:
    """Number disconnections reported by carriers."""


@disconnections_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--carrier",
    required=True,
    help="Slug of the carrier organization whose file it is; only numbers in its ranges count.",
)
def import_file(file: Path, carrier: str) -> None:
    """Load a CSV of ``phone,disconnected_at``; bad rows are reported by line, good rows kept."""
    settings = current_settings()
    accepted = 0
    with db.session() as session:
        org = carrier_org(session, carrier)  # before reading a line: whose file is it?
        rows, bad = _read(file)
        actor = Actor(f"carrier:{org.slug}", "cli", org_id=org.id)
        with click.progressbar(length=len(rows), label="importing", file=sys.stderr) as bar:
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                taken, rejected = services.disconnect_many(
                    session, settings, actor, [r for _, r in chunk]
                )
                session.commit()
                accepted += taken
                bad.extend(
                    (chunk[r.index][0], f"{r.error.message} ({r.error.code})") for r in rejected
                )
                bar.update(len(chunk))
        audit.record(session, None, "disconnections.import", f"org:{org.slug}",
                     {"file": file.name, "accepted": accepted, "rejected": len(bad)},
                     actor="cli")  # fmt: skip
        session.commit()
    for line_no, message in sorted(bad):
        click.echo(f"line {line_no}: {message}", err=True)
    click.echo(f"{accepted} disconnections recorded, {len(bad)} rows rejected")
    if bad and not accepted:
        sys.exit(1)


def _read(file: Path) -> tuple[list[tuple[int, tuple[object, object]]], list[tuple[int, str]]]:
    """Return the file's rows by line number, and the lines that are not two fields."""
    rows: list[tuple[int, tuple[object, object]]] = []
    bad: list[tuple[int, str]] = []
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for row in reader:
                line_no = reader.line_num
                if not row or not "".join(row).strip():
                    continue
                if line_no == 1 and row[0].strip().lower() in ("phone", "number", "msisdn"):
                    continue
                if len(row) < 2:
                    bad.append((line_no, "expected phone,disconnected_at"))
                    continue
                rows.append((line_no, (row[0], row[1])))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise click.BadParameter(
            f"{file.name} is not a UTF-8 CSV file ({exc})", param_hint="FILE"
        ) from exc
    return rows, bad


@disconnections_group.command("list")
@click.argument("phone")
def list_disconnections(phone: str) -> None:
    """Show every disconnection reported for a number, retracted ones too."""
    with db.session() as session:
        e164 = _phone(phone)
        for row in services.for_phone(session, e164):
            carrier = (
                session.get(Organization, row.organization_id) if row.organization_id else None
            )
            state = f"retracted {iso(row.retracted_at)}" if row.retracted_at else "standing"
            click.echo(
                f"{row.id}\t{row.phone}\t{iso(row.disconnected_at)}\t"
                f"{carrier.slug if carrier else '-'}\t{state}"
            )


def _phone(text: str) -> str:
    try:
        return phones.to_e164(text, current_settings().default_region)
    except phones.InvalidPhone as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from exc


@disconnections_group.command("retract")
@click.argument("phone")
@click.argument("disconnected_at")
@click.option("--reason", required=True, help="Why the disconnection was wrong (kept, audited).")
def retract(phone: str, disconnected_at: str, reason: str) -> None:
    """Retract a wrong disconnection as the regulator, restoring what it voided."""
    settings = current_settings()
    with db.session() as session:
        try:
            found = services.find_disconnection(
                session, _phone(phone), services.parse_time(disconnected_at, settings)
            )
            carrier = session.get(Organization, found.organization_id or 0)
            done = services.retract(
                session, Actor("regulator", "cli"), found, reason, carrier_id=None, by="cli"
            )
        except RegistryError as exc:
            raise _fail(exc) from exc
        audit.record(session, None, "disconnection.retract", f"disconnection:{found.id}",
                     {"phone": found.phone, "disconnected_at": found.disconnected_at,
                      "carrier": carrier.slug if carrier else None, "reason": reason,
                      "restored_consents": done.consents,
                      "restored_preferences": done.preferences}, actor="cli")  # fmt: skip
        session.commit()
    click.echo(
        f"retracted disconnection {found.id} of {found.phone}: "
        f"{done.consents} consents restored, preferences "
        f"{'restored' if done.preferences else 'unchanged'}"
    )


@click.group("ranges")
def ranges_group() -> None:
    """Number ranges (号段): which carrier speaks for which numbers."""


@ranges_group.command("assign")
@click.argument("prefix")
@click.argument("carrier")
@click.option(
    "--host",
    default=None,
    help="Sub-assign PREFIX, inside one of this host carrier's ranges, to CARRIER (an MVNO).",
)
def ranges_assign(prefix: str, carrier: str, host: str | None) -> None:
    """Assign PREFIX (e.g. +86138) to the carrier organization CARRIER."""
    with db.session() as session:
        try:
            if host is None:
                row = ranges.assign(session, prefix, carrier, "cli")
            else:
                host_org = get_org(session, host.strip())
                row = ranges.sub_assign(session, host_org.id or 0, prefix, carrier, "cli")
        except RegistryError as exc:
            raise _fail(exc) from exc
        audit.record(session, None, "range.assign", f"range:{row.prefix}",
                     {"carrier": carrier.strip(), "host": host}, actor="cli")  # fmt: skip
        session.commit()
        click.echo(
            f"assigned {row.prefix} to {carrier.strip()}" + (f" (from {host})" if host else "")
        )


@ranges_group.command("list")
@click.option("--carrier", default=None, help="Only the ranges of this carrier (held or given).")
@click.option("--all", "everything", is_flag=True, help="Include revoked ranges.")
def ranges_list(carrier: str | None, everything: bool) -> None:
    """List number ranges: prefix, carrier, host carrier (for an MVNO), since, revoked."""
    with db.session() as session:
        org_id = carrier_org(session, carrier).id if carrier else None
        for r in ranges.list_ranges(session, org_id, include_revoked=everything):
            host = f"{r.host} {r.host_prefix}" if r.host else "-"
            revoked = f"revoked {iso(r.revoked_at)}" if r.revoked_at else "live"
            click.echo(f"{r.prefix}\t{r.carrier}\t{host}\t{iso(r.created_at)}\t{revoked}")


@ranges_group.command("revoke")
@click.argument("prefix")
def ranges_revoke(prefix: str) -> None:
    """Revoke the live range PREFIX (and the sub-assignments made inside it)."""
    with db.session() as session:
        try:
            row = ranges.find(session, prefix)
            ranges.revoke(session, row.id or 0, "cli")
        except RegistryError as exc:
            raise _fail(exc) from exc
        audit.record(session, None, "range.revoke", f"range:{row.prefix}", actor="cli")
        session.commit()
        click.echo(f"revoked {row.prefix}")


COMMANDS = [disconnections_group, ranges_group]
