"""Consistency check: a platform's own rows against the registry, differences only.

The registry decides with the same code as ``/check`` (``decide_many`` over
``load_facts``), so "differs" means "a check now would answer otherwise". The
time of day is not a record: a deny for ``quiet_hours`` (calling hours or the
holder's quiet hours) counts as ``allowed`` here, since the platform's copy is
about permission, not about the clock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry import phones
from registry.checks.services import CheckRequest, decide_many
from registry.config import Settings
from registry.errors import RegistryError, TooLarge
from registry.orgs.services import Caller
from registry.senders.services import SenderRef, resolve_sender

MAX_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Row:
    """One of the platform's rows."""

    phone: str
    sender: str
    channel: str
    state: str  # allowed | denied


def registry_state(decision: str, reason: str) -> str:
    """Return ``allowed`` or ``denied`` as the registry's records say (the clock aside)."""
    return "allowed" if decision == "allow" or reason == "quiet_hours" else "denied"


def compare(
    session: Session, settings: Settings, caller: Caller, rows: list[Row], at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (differences, errors), each naming the row's index in the page."""
    if len(rows) > MAX_ROWS:
        raise TooLarge(f"a page holds at most {MAX_ROWS} rows", field="rows")
    errors: list[dict[str, Any]] = []
    senders: dict[str, SenderRef | RegistryError] = {}
    resolved: dict[str, SenderRef] = {}
    groups: dict[tuple[str, str], list[tuple[int, str, Row]]] = defaultdict(list)
    for index, row in enumerate(rows):
        try:
            phone = phones.to_e164(row.phone, settings.default_region)
        except phones.InvalidPhone as exc:
            errors.append({"index": index, "error": {"code": "invalid_phone", "message": str(exc)}})
            continue
        if row.sender not in senders:
            try:
                senders[row.sender] = resolve_sender(session, caller, row.sender, "check", at)
            except RegistryError as exc:
                senders[row.sender] = exc
        ref = senders[row.sender]
        if isinstance(ref, RegistryError):
            errors.append({"index": index, "error": {"code": ref.code, "message": ref.message}})
            continue
        resolved[row.sender] = ref
        groups[(row.sender, row.channel)].append((index, phone, row))
    differences: list[dict[str, Any]] = []
    for (code, channel), items in groups.items():
        ref = resolved[code]
        req = CheckRequest(ref, channel, "marketing", ref.category, at)
        decisions = decide_many(session, settings, req, list(dict.fromkeys(p for _, p, _ in items)))
        for index, phone, row in items:
            dec = decisions[phone]
            state = registry_state(dec.decision, dec.reason)
            if state != row.state:
                differences.append(
                    {
                        "index": index,
                        "phone": phone,
                        "sender": code,
                        "channel": channel,
                        "state": state,
                        "yours": row.state,
                        "reason": dec.reason,
                    }
                )
    differences.sort(key=lambda d: int(d["index"]))
    return differences, errors
