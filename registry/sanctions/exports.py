"""The public register as data: CSV, JSON and an Atom feed of measures and the credit list.

Built from ``public_register`` and ``credit_list``; no Flask here (the views in
``registry.admin.public`` serve them). Atom is written with ElementTree, so
every text is escaped by the library.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET  # nosec B405
from datetime import datetime
from typing import Any

from registry.orgs.models import Organization
from registry.sanctions.services import RegisterEntry
from registry.timeutil import iso

ATOM = "http://www.w3.org/2005/Atom"
FIELDS = (
    "id", "kind", "status", "organization", "organization_slug", "credit_code", "region",
    "sender", "address", "reason", "starts_at", "ends_at", "deadline", "lifted_at", "done_at",
    "fine_yuan",
)  # fmt: skip
LIST_FIELDS = ("organization", "organization_slug", "credit_code", "region", "listed_until")


def status_of(entry: RegisterEntry) -> str:
    """Return ``in_force``, ``lifted``, ``completed`` or ``ended``."""
    if entry.active:
        return "in_force"
    if entry.lifted_at is not None:
        return "lifted"
    if entry.done_at is not None:
        return "completed"
    return "ended"


def entry_data(entry: RegisterEntry) -> dict[str, Any]:
    """Return one register line as plain data (times ISO 8601 UTC)."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "status": status_of(entry),
        "organization": entry.organization,
        "organization_slug": entry.organization_slug,
        "credit_code": entry.credit_code,
        "region": entry.region,
        "sender": entry.sender,
        "address": entry.address,
        "reason": entry.reason,
        "starts_at": iso(entry.starts_at),
        "ends_at": iso(entry.ends_at),
        "deadline": iso(entry.deadline),
        "lifted_at": iso(entry.lifted_at),
        "done_at": iso(entry.done_at),
        "fine_yuan": entry.amount,
    }


def listed_data(org: Organization) -> dict[str, Any]:
    """Return one line of the credit list as plain data."""
    return {
        "organization": org.name,
        "organization_slug": org.slug,
        "credit_code": org.credit_code,
        "region": org.region,
        "listed_until": iso(org.listed_until),
    }


def as_json(
    entries: list[RegisterEntry], listed: list[Organization], now: datetime
) -> dict[str, Any]:
    """Return the register and the credit list as one JSON document."""
    return {
        "generated_at": iso(now),
        "measures": [entry_data(e) for e in entries],
        "credit_list": [listed_data(o) for o in listed],
    }


def _csv_safe(value: Any) -> Any:
    # A text starting with =, +, - or @ would be a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def as_csv(entries: list[RegisterEntry]) -> str:
    """Return the measures as CSV with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow({k: _csv_safe(v) for k, v in entry_data(entry).items()})
    return out.getvalue()


def listed_csv(listed: list[Organization]) -> str:
    """Return the credit list as CSV with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LIST_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for org in listed:
        writer.writerow({k: _csv_safe(v) for k, v in listed_data(org).items()})
    return out.getvalue()


def as_atom(entries: list[RegisterEntry], base: str, now: datetime, title: str) -> bytes:
    """Return an Atom feed: one entry per measure, newest first; ``base`` is the site's root URL."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"{base}/sanctions"
    ET.SubElement(feed, f"{{{ATOM}}}title").text = title
    updated = max((e.starts_at for e in entries), default=now)
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = iso(updated)
    ET.SubElement(feed, f"{{{ATOM}}}link", href=f"{base}/sanctions.atom", rel="self")
    ET.SubElement(feed, f"{{{ATOM}}}link", href=f"{base}/sanctions", rel="alternate")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "Anning"
    for entry in entries:
        item = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(item, f"{{{ATOM}}}id").text = f"{base}/sanctions#measure-{entry.id}"
        subject = entry.address or entry.sender or entry.organization
        code = f" ({entry.credit_code})" if entry.credit_code else ""
        ET.SubElement(
            item, f"{{{ATOM}}}title"
        ).text = f"{entry.kind}: {entry.organization}{code} — {subject}"
        ET.SubElement(item, f"{{{ATOM}}}updated").text = iso(
            entry.lifted_at or entry.done_at or entry.starts_at
        )
        ET.SubElement(item, f"{{{ATOM}}}published").text = iso(entry.starts_at)
        ET.SubElement(item, f"{{{ATOM}}}link", href=f"{base}/sanctions#measure-{entry.id}")
        lines = [f"{k}: {v}" for k, v in entry_data(entry).items() if v not in (None, "")]
        ET.SubElement(item, f"{{{ATOM}}}content", type="text").text = "\n".join(lines)
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
