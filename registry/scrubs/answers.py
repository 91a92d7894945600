"""A scrub's chunk answered: ``check_batch``'s answers and log rows, decided once per shape.

A scrub (``registry scrub``, the scrub worker) is a batch check in chunks of
up to ``REGISTRY_MAX_BATCH`` numbers: the same facts, cold-number budget,
decisions, frequency cap and check-log rows as ``checks.services.check_batch``
(SPEC §4 ``/check/batch``). A scrubbed list is large and alike: a million
numbers, half of them holders whose consents the sender collected with one
form at one time. ``answer`` therefore reads the facts by shape
(``facts.load_shapes``: the rows as the driver gives them, one row set decoded
per shape) and decides, measures coldness and looks for caps once per shape
and zone; each number's answer names its own consent, as ``decide_all`` does
for the batches. ``decide`` is a pure function of the facts and the question,
so every answer is the one a single check would give
(tests/cli/test_scrub.py compares them).

A request the scrubs never make (per-process copies to verify, a calling
address) is answered by ``check_batch`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from registry import phones
from registry.checks import services as checks
from registry.checks.checklog import log_batch
from registry.checks.facts import Shapes, load_shapes
from registry.config import Settings
from registry.decision import Decision, Facts, counted_cap, decide
from registry.errors import TooLarge
from registry.events.sealing import known_seq
from registry.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class Answered:
    """A chunk's answers in input order, its counts and the check log's batch row.

    ``phones[i]`` is ``inputs[i]`` as E.164 and ``decisions[i]`` its answer;
    both None when the input is not a phone number (``invalid_phone``).
    Parallel lists, not a ``BatchItem`` per number: building a million of
    those frozen objects cost two seconds of a million-number scrub.
    """

    inputs: Sequence[Any]
    phones: list[str | None]
    decisions: list[Decision | None]
    allowed: int
    denied: int
    invalid: int
    batch_id: int
    checked_at: datetime
    data_version: int  # the feed position the answers rest on
    valid_until: datetime


def answer(
    session: Session,
    settings: Settings,
    req: checks.CheckRequest,
    inputs: Sequence[Any],
    budget: checks.ColdBudget | None = None,
) -> Answered:
    """Answer one chunk of a scrub in ``session``'s transaction, as ``check_batch`` would.

    No receipt is signed: a scrub's answers are vouched for by its
    certificate (registry/scrubs/services.py), not one receipt per chunk.
    """
    if req.copies is not None or req.caller is not None:
        return _answered(checks.check_batch(session, settings, req, inputs, None, budget))
    if len(inputs) > settings.max_batch:
        raise TooLarge(f"a batch holds at most {settings.max_batch} numbers", field="phones")
    with checks.cycles_collected_after():
        return _answer(session, settings, req, inputs, budget)


def _answer(
    session: Session,
    settings: Settings,
    req: checks.CheckRequest,
    inputs: Sequence[Any],
    budget: checks.ColdBudget | None,
) -> Answered:
    region = settings.default_region
    fast = phones.fast_path(region)  # phones.to_e164's first step, as checks.normalize_many
    numbers: list[str | None] = []
    for raw in inputs:  # as checks.normalize_many, without a tuple per number
        e164 = fast(raw) if type(raw) is str else None
        if e164 is None:
            try:
                e164 = phones.to_e164(raw, region)
            except phones.InvalidPhone:
                e164 = None
        numbers.append(e164)
    distinct = list(dict.fromkeys(p for p in numbers if p is not None))
    state = known_seq(session)  # as in check_batch: the registry state the answers rest on
    shapes = load_shapes(session, req.sender, distinct, req.at)
    if budget is not None:
        budget.spend(_cold(shapes, distinct, req))
    decisions = _decide(settings, req, shapes, distinct)
    _count_allows(session, settings, req, shapes, decisions)
    # From here on as check_batch (checks/services.py _check_batch) goes on.
    now = utcnow()
    answers = [decisions[p] if p is not None else None for p in numbers]
    allowed = sum(1 for d in answers if d is not None and d.decision == "allow")
    invalid = numbers.count(None)
    denied = len(answers) - allowed - invalid
    batch_id = log_batch(session, req, decisions, now, (len(answers), allowed, denied, invalid))
    return Answered(
        inputs, numbers, answers, allowed, denied, invalid, batch_id, now, state,
        checks.valid_until_of(settings, now),
    )  # fmt: skip


def _answered(result: checks.BatchResult) -> Answered:
    items = result.items
    return Answered(
        [i.input for i in items], [i.phone for i in items], [i.decision for i in items],
        result.allowed, result.denied, result.invalid, result.batch_id,
        result.checked_at or utcnow(), result.data_version,
        result.valid_until or utcnow(),
    )  # fmt: skip


def _cold(shapes: Shapes, distinct: list[str], req: checks.CheckRequest) -> int:
    """Count the distinct numbers the sender has no record with (``checks.cold``), per shape."""
    per_shape = [checks.cold(f, req.channel, req.at) for f in shapes.facts]
    held = shapes.of
    unknown = len(distinct) - len(held)
    cold_empty = checks.cold(shapes.empty, req.channel, req.at)
    return (unknown if cold_empty else 0) + sum(1 for i, _ in held.values() if per_shape[i])


def _decide(
    settings: Settings, req: checks.CheckRequest, shapes: Shapes, distinct: list[str]
) -> dict[str, Decision]:
    """Decide every number once per (shape, zone); each answer names the number's own consent."""
    policy = checks.policy_of(settings)

    def decided(f: Facts, zone: ZoneInfo) -> Decision:
        return decide(
            f, channel=req.channel, purpose=req.purpose, category=req.category,
            at=req.at, policy=policy, zone=zone,
        )  # fmt: skip

    blank: dict[ZoneInfo, Decision] = {}
    # By (shape, zone): the answer, and the place of the consent it names (-1: none).
    shared: dict[tuple[int, ZoneInfo], tuple[Decision, int]] = {}
    held = shapes.of
    facts = shapes.facts
    zone_of = phones.zone_finder(settings.timezone)  # checks.zone_for, once per country zone
    out: dict[str, Decision] = {}
    for p in distinct:
        zone = zone_of(p)
        got = held.get(p)
        if got is None:
            dec = blank.get(zone)
            if dec is None:
                dec = blank[zone] = decided(shapes.empty, zone)
            out[p] = dec
            continue
        i, ids = got
        seen = shared.get((i, zone))
        if seen is None:
            f = facts[i]
            dec = decided(f, zone)
            first = [c.id for c in f.consents]
            place = first.index(dec.consent_id) if dec.consent_id in first else -1
            seen = shared[i, zone] = (dec, place)
        dec, place = seen
        if place >= 0 and ids[place] != dec.consent_id:
            dec = Decision(dec.decision, dec.reason, ids[place], dec.next_allowed_at)
        out[p] = dec
    return out


def _count_allows(
    session: Session,
    settings: Settings,
    req: checks.CheckRequest,
    shapes: Shapes,
    decisions: dict[str, Decision],
) -> None:
    """Count the allows of holders with a cap (``checks.count_allows``), on their own facts."""
    capped = {
        i for i, f in enumerate(shapes.facts) if counted_cap(f, req.channel) is not None
    }  # counted_cap reads no consent id: one answer per shape
    if not capped or req.purpose == "service":
        return
    facts: dict[str, Facts] = {
        p: shapes.facts_of(p)
        for p, d in decisions.items()
        if d.allowed and p in shapes.of and shapes.of[p][0] in capped
    }
    # Only the capped allows: for the others count_allows would count nothing (and it
    # counts in sorted order, which the subset keeps).
    counted = {p: decisions[p] for p in facts}
    checks.count_allows(session, settings, req, facts, counted)
    decisions.update(counted)
