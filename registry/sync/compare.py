"""Consistency check: a platform's own rows against the registry, differences only.

The registry decides with the same code as ``/check`` (``decide_many`` over
``load_facts``), so "differs" means "a check now would answer otherwise". The
time of day is not a record: a deny for ``quiet_hours`` (calling hours or the
holder's quiet hours) counts as ``allowed`` here, since the platform's copy is
about permission, not about the clock. So is ``frequency_capped``, and a
comparison, which is not a contact about to happen, counts nothing against
the holder's cap (checks/tally.py).

A comparison is a check by another name: it tells the caller what a check
would, so it is logged as one (the holder sees it under "who checked my
number") and rows on numbers the sender has no record with draw on the same
cold-number budget (``gate``, ``checks.services.cold``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry import phones
from registry.checks.checklog import log_batch
from registry.checks.services import (
    CheckRequest,
    ColdBudget,
    cold,
    decide_all,
    load_facts,
)
from registry.config import Settings
from registry.errors import RegistryError, TooLarge
from registry.orgs.services import Caller
from registry.senders.services import SenderRef, resolve_sender
from registry.timeutil import utcnow

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
    # The holder's frequency cap is the clock too (a count per day and week).
    return (
        "allowed"
        if decision == "allow" or reason in ("quiet_hours", "frequency_capped")
        else "denied"
    )


def compare(
    session: Session,
    settings: Settings,
    caller: Caller,
    rows: list[Row],
    at: datetime,
    gate: ColdBudget | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (differences, errors), each naming the row's index in the page; log every answer.

    ``gate`` is spent first with the number of rows on cold numbers; when it
    refuses, nothing is answered or logged.
    """
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
    asked = []
    for (code, channel), items in groups.items():
        ref = resolved[code]
        req = CheckRequest(ref, channel, "marketing", ref.category, at)
        facts = load_facts(session, ref, list(dict.fromkeys(p for _, p, _ in items)), at)
        asked.append((req, items, facts))
    if gate is not None:
        gate.spend(
            sum(1 for req, _, f in asked for one in f.values() if cold(one, req.channel, at))
        )
    now = utcnow()
    differences: list[dict[str, Any]] = []
    for req, items, facts in asked:
        decisions = decide_all(settings, req, facts)
        log_batch(session, req, decisions, now)
        for index, phone, row in items:
            dec = decisions[phone]
            state = registry_state(dec.decision, dec.reason)
            if state != row.state:
                differences.append(
                    {
                        "index": index,
                        "phone": phone,
                        "sender": req.sender.code,
                        "channel": req.channel,
                        "state": state,
                        "yours": row.state,
                        "reason": dec.reason,
                    }
                )
    differences.sort(key=lambda d: int(d["index"]))
    return differences, errors
