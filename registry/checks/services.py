"""The preflight check: resolve the sender, gather the facts, decide, log, sign a receipt.

This is the hot path; read a check top to bottom in ``check`` (one number) and
``check_many`` (a batch): the key and sender come from per-process copies
(registry/copies.py), verified by the facts query (checks/facts.py), and read
again when they are out of date; the cold-number budget is asked before
answering; the log row is written before the answer leaves; the receipt is
signed (checks/receipts.py). Core statements and plain rows throughout
(STYLE.md, habit 5). The log rows are written by checks/checklog.py; what
the log holds is read back by checks/history.py (receipts, who checked a number).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry import copies, phones
from registry.access.services import Chain, chain_of
from registry.checks import receipts, tally
from registry.checks.checklog import Unconfirmed, _log_row, _log_single, _write_log, log_batch
from registry.checks.facts import (
    CallerAddress,
    load_checked,
    load_facts,
    recent_changes,
)
from registry.config import Settings
from registry.copies import StaleCopy
from registry.database.standby import Standby
from registry.database.statements import Direct
from registry.database.writerlock import one_transaction
from registry.db import CheckSessions
from registry.decision import Decision, Facts, Policy, counted_cap, decide
from registry.errors import InvalidPhoneError, TooLarge
from registry.events.sealing import known_seq, known_seq_of
from registry.numbers.ranges import NotYourNumber, holder_of
from registry.orgs.services import Caller
from registry.senders.services import SenderRef, sender_by_id
from registry.timeutil import iso, to_utc, utcnow

__all__ = ["load_facts"]  # re-exported: the facts are part of this service's interface


class ColdBudget(Protocol):
    """The budget of checks on numbers the caller has no record with (``cold``).

    Handed to the service by the edge (the API implements it with the rate
    limiter's storage, api/gates.py); the service spends it before answering.
    """

    def spend(self, numbers: int) -> None:
        """Spend ``numbers`` of the budget; raise RateLimited (with nothing answered) when spent."""


@dataclass(frozen=True, slots=True)
class Question:
    """What a caller asks, as parsed from the request: its sender still a code."""

    sender: str
    channel: str
    purpose: str
    category: str | None = None
    at: datetime | None = None
    caller: str | None = None  # the calling address (``from``), as phones.to_address stores it


def policy_of(settings: Settings) -> Policy:
    """Return the decision policy the settings describe."""
    return Policy(settings.policy, settings.calling_hours, settings.tz)


def zone_for(phone: str, settings: Settings) -> ZoneInfo:
    """Return the number's local zone (SPEC §3 step 8), the registry's where none is known."""
    return phones.zone_of(phone, settings.timezone)


class StandbyFailed(Exception):
    """A standby failed or outlived its deadline while reading a check's facts."""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What a caller asks: may this sender contact these numbers this way at this time?"""

    sender: SenderRef
    channel: str
    purpose: str
    category: str
    at: datetime
    copies: copies.Copies | None = None  # per-process copies, verified by the first primary read
    caller: str | None = None  # the calling address the contact will come from (``from``)
    asked_by: int | None = None  # the carrier asking on behalf of the network, if one is
    hold: dict[str, Any] | None = None  # or by the log row's insert (``copies.HOLD``)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One answered check, logged, with its signed receipt id."""

    phone: str
    decision: Decision
    check_id: str
    checked_at: datetime
    request: CheckRequest
    caller: CallerAddress | None = None  # the calling address as the sender holds it
    data_version: int = 0  # the feed position the answer rests on (receipts.Claims.registry_seq)
    valid_until: datetime | None = None  # how long it may be relied on (valid_until_of)
    read_from: str = "primary"  # where the facts were read: "primary" or "replica"


def valid_until_of(settings: Settings, checked_at: datetime) -> datetime:
    """Return until when an answer given at ``checked_at`` may be relied on.

    ``REGISTRY_RESULT_VALIDITY``: by default zero, so the answer holds only at
    the moment it was given (check again before each contact, as opt-in rules
    want); ``21d`` or ``31d`` express the validity DNC-style registries grant a
    washed list. Checks, batches and scrubs alike carry it.
    """
    return checked_at + settings.result_validity


def _request(
    dbs: CheckSessions,
    settings: Settings,
    who: Caller,
    key: str,
    question: Question,
    scope: str,
    fresh: bool,
    single: bool = True,
) -> CheckRequest:
    """Build the check request, with the caller and sender from copies unless ``fresh``.

    Copies are verified on the primary, never on a standby that may lag behind
    a revocation: by the facts query, or with facts from a standby, by the log
    row's insert (one number, an owner's own sender) or the batch's change
    query. A delegated single check from a standby reads its grants afresh.
    """
    now = utcnow()
    verify: copies.Copies | None = None
    hold: dict[str, Any] | None = None
    if fresh:
        who, sender = copies.afresh(dbs.lookup, key, who, question.sender, scope, now)
    else:
        sender = copies.sender(dbs.open_lookup, who, question.sender, scope, now)
        if not (dbs.replica and single):
            verify = copies.copies_of(who, sender)
        elif sender.agent_id is None:
            hold = copies.hold_params(who, sender)
        else:
            who, sender = copies.afresh(dbs.lookup, key, who, question.sender, scope, now)
    at = to_utc(question.at, settings.tz) if question.at is not None else now
    category = question.category or sender.category
    return CheckRequest(
        sender,
        question.channel,
        question.purpose,
        category,
        at,
        verify,
        question.caller,
        hold=hold,
    )


def check(
    dbs: CheckSessions,
    settings: Settings,
    who: Caller,
    key: str,
    question: Question,
    phone: str,
    budget: ColdBudget | None,
) -> CheckResult:
    """Answer one check for the caller ``who`` (bearer ``key``): decided, logged, signed.

    The caller's key and sender are taken from copies first; when the facts
    query finds them out of date, they are read again and the check answered
    with those (a revoked key is refused then). With facts from a standby, an
    answer the primary does not confirm (``Unconfirmed``) or a standby that
    fails is answered again wholly from the primary. The log row is on
    ``dbs.direct`` (committed), or on ``dbs.write``, which the caller commits
    before sending the answer.
    """
    try:
        req = _request(dbs, settings, who, key, question, "check", fresh=False)
        return check_one(dbs, settings, req, phone, budget)
    except StaleCopy:
        req = _request(dbs, settings, who, key, question, "check", fresh=True)
        return check_one(dbs, settings, req, phone, budget)
    except (Unconfirmed, StandbyFailed) as exc:
        primary = dbs.without_standby()
        req = _request(primary, settings, who, key, question, "check", fresh=True)
        # An unconfirmed answer had spent the cold budget already.
        spend = budget if isinstance(exc, StandbyFailed) else None
        return check_one(primary, settings, req, phone, spend)


def check_many(
    dbs: CheckSessions,
    settings: Settings,
    who: Caller,
    key: str,
    question: Question,
    inputs: Sequence[Any],
    budget: ColdBudget | None,
    overlap: bool = False,
) -> BatchResult:
    """Answer a batch as ``check`` answers one number (copies verified, else read again).

    ``overlap``: the log rows may be left in flight (checklog.log_batch); the
    caller settles them (checklog.settle) before it answers.
    """
    o = overlap
    try:
        try:
            req = _request(dbs, settings, who, key, question, "check", False, single=False)
            return check_batch(dbs.write, settings, req, inputs, dbs.read, budget, dbs.standby, o)
        except StaleCopy:
            req = _request(dbs, settings, who, key, question, "check", True, single=False)
            return check_batch(dbs.write, settings, req, inputs, dbs.read, budget, dbs.standby, o)
    except (Unconfirmed, StandbyFailed):  # from either try; neither had spent the cold budget
        primary = dbs.without_standby()
        req = _request(primary, settings, who, key, question, "check", True, single=False)
        return check_batch(primary.write, settings, req, inputs, primary.read, budget, overlap=o)


def check_one(
    dbs: CheckSessions,
    settings: Settings,
    req: CheckRequest,
    phone: str,
    budget: ColdBudget | None = None,
) -> CheckResult:
    """Decide one check (facts from ``dbs.read``, a standby's if any), log it, sign its receipt.

    ``dbs.direct``: the facts and the log row on the thread's own connection
    instead of the sessions' (database.statements.Direct; never with a standby).
    ``budget`` is spent first when the sender has no record with the number.
    An allow that counts against the holder's frequency cap is counted and
    logged in one transaction on ``dbs.write``'s connection (checks/tally.py).
    """
    standby, direct = dbs.standby, dbs.direct
    # The receipt names the registry state it rests on: a feed number read before
    # the facts, from the same database, so every change up to it was in this
    # decision's view and a regulator can replay it. Cached per process and
    # database for 50 ms (events/sealing.py): a query per check would cost more.
    try:
        if direct is not None:
            state = known_seq_of(direct.engine, direct)
            facts_on: Session | Direct = direct
        else:
            facts_on = dbs.read
            state = known_seq(facts_on)
        verify = None if standby is not None else req.copies
        found, held = load_checked(facts_on, req.sender, [phone], req.at, verify, req.caller)
        facts = found[phone]
    except DBAPIError as exc:
        if standby is None:
            raise
        standby.failed()
        raise StandbyFailed from exc
    if budget is not None and cold(facts, req.channel, req.at):
        budget.spend(1)
    zone = zone_for(phone, settings)
    policy = policy_of(settings)

    def decided(known: Facts) -> Decision:
        return decide(known, channel=req.channel, purpose=req.purpose, category=req.category,
                      at=req.at, policy=policy, zone=zone)  # fmt: skip

    dec = decided(facts)
    limits = counted_cap(facts, req.channel) if dec.allowed and req.purpose != "service" else None
    if limits is None:
        now = utcnow()
        # Committed by itself: on ``direct``, or ``dbs.write`` with no transaction
        # (db.get_check_sessions).
        row = _log_row(req, phone, dec, now, held)
        log_id = _log_single(dbs, settings, req, row)
    else:
        # Counted and logged in one transaction: the count is the authority, and a
        # check that lost the last slot to another is decided again with the counts.
        conn = dbs.write.connection()
        with one_transaction(conn):
            full = tally.count(conn, phone, req.channel, limits, facts, req.at, zone)
            if full is not None:
                dec = decided(full)
            now = utcnow()
            log_id = _write_log(conn, req, standby, _log_row(req, phone, dec, now, held))
    valid_until = valid_until_of(settings, now)
    claims = receipts.Claims(
        sender=req.sender.code,
        channel=req.channel,
        purpose=req.purpose,
        checked_at=iso(now),
        registry_seq=state,
        log_id=log_id,
        phone=phone,
        decision=dec.decision,
        reason=dec.reason,
        agent=req.sender.agent_slug,
        on_behalf_of=req.sender.org_slug if req.sender.agent_slug is not None else None,
        caller=req.caller,
        valid_until=iso(valid_until),
    )
    return CheckResult(
        phone,
        dec,
        receipts.sign(settings, claims),
        now,
        req,
        held,
        data_version=state,
        valid_until=valid_until,
        read_from="primary" if standby is None else "replica",
    )


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One entry of a batch: the input, and either the phone and decision or an error."""

    input: Any
    phone: str | None = None
    decision: Decision | None = None
    error: InvalidPhoneError | None = None


# One parsed entry of a batch, in input order: the input, its E.164 form, or its error.
Entry = tuple[Any, str | None, InvalidPhoneError | None]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A batch's results in input order, its counts, and its receipt id.

    The answers are kept as the batch computed them, the parsed ``entries``
    in input order and one ``decisions`` entry per distinct number (numbers
    of one shape share a Decision object); ``items`` builds the per-entry
    view on demand. The API renders its answer from the two directly
    (api/checks.py): ten thousand BatchItem objects cost more than the
    answer's JSON.
    """

    entries: list[Entry]
    decisions: dict[str, Decision]
    allowed: int
    denied: int
    invalid: int
    check_id: str
    request: CheckRequest
    batch_id: int = 0
    checked_at: datetime | None = None
    data_version: int = 0  # the feed position the answers rest on
    valid_until: datetime | None = None
    read_from: str = "primary"

    @property
    def items(self) -> list[BatchItem]:
        """Return the results in input order: the input, and its phone and decision or its error."""
        decisions = self.decisions
        return [
            BatchItem(raw, p, decisions[p]) if p is not None else BatchItem(raw, error=err)
            for raw, p, err in self.entries
        ]


def normalize_many(inputs: Iterable[Any], region: str) -> list[Entry]:
    """Parse every input; an invalid one carries its error instead of failing the rest."""
    out: list[Entry] = []
    fast = phones.fast_path(region)  # phones.to_e164's first step, the region's pattern found once
    for raw in inputs:
        if type(raw) is str:
            e164 = fast(raw)
            if e164 is not None:
                out.append((raw, e164, None))
                continue
        try:
            out.append((raw, phones.to_e164(raw, region), None))
        except phones.InvalidPhone as exc:
            out.append((raw, None, InvalidPhoneError(str(exc))))
    return out


def decide_many(
    session: Session, settings: Settings, req: CheckRequest, phone_list: Sequence[str]
) -> dict[str, Decision]:
    """Decide for many distinct phones at once (batch, scrub); ``session`` only reads."""
    return decide_all(
        settings, req, load_facts(session, req.sender, phone_list, req.at, req.copies)
    )


def cold(facts: Facts, channel: str, at: datetime) -> bool:
    """Tell whether the sender has no record with this number on ``channel`` (SPEC §8, last line).

    Checks on such numbers are what mining the registry looks like; they have
    their own, lower rate limit (``REGISTRY_RATELIMIT_COLD_CHECK``). A record
    makes the number "warm" only for this sender and this channel, and only if
    it speaks for the number's current holder (made after its latest
    disconnection): an opt-out, or a consent the holder confirmed at some time
    or that is still waiting for confirmation. A voice consent says nothing
    about texting, and a claim the holder let lapse unconfirmed is no
    relationship (it cost the sender a text, limited per number, not a check).
    """
    cut = facts.disconnected_at

    def counts(*times: datetime) -> bool:
        return cut is None or all(t > cut for t in times)

    for o in facts.optouts:
        if channel in o.channels and counts(o.received_at, o.recorded_at):
            return False
    for c in facts.consents:
        if channel not in c.channels or not counts(c.given_at, c.recorded_at):
            continue
        if c.activated_at is not None:
            return False
        if c.status == "pending" and (c.pending_until is None or c.pending_until > at):
            return False
    return True


def _shape(facts: Facts, zone: ZoneInfo) -> tuple[Any, ...]:
    """Return what ``decide`` reads of ``facts`` in ``zone``, less the consents' ids.

    Two numbers with the same shape get the same answer, but for the consent it
    rests on: ``decide`` uses a consent's id only to name it (``consent_id``),
    never to choose it, so the chosen consent is at the same place in both.
    """
    consents = tuple(
        (c.channels, c.status, c.given_at, c.recorded_at, c.category, c.activated_at,
         c.expires_at, c.pending_until)
        for c in facts.consents
    )  # fmt: skip
    return (
        zone, facts.sender_suspended, facts.caller_unregistered, consents, facts.optouts,
        facts.preferences, facts.disconnected_at, facts.cap,
    )  # fmt: skip


def decide_all(
    settings: Settings, req: CheckRequest, facts: dict[str, Facts]
) -> dict[str, Decision]:
    """Decide every (phone, facts) pair of a request, once per distinct shape of facts.

    Numbers of which the registry knows nothing (most of a scrubbed list) share
    one ``Facts`` object (``load_facts``), decided once per time zone; numbers
    whose facts differ only in their consents' ids (a list a sender collected
    consents for, with one form at one time) are decided once per ``_shape``,
    the answer naming each number's own consent. ``decide`` is a pure function,
    so each answer is the one a single check would give
    (tests/api/test_check.py::test_batch_answers_equal_single_checks).
    """
    policy = policy_of(settings)
    blank: dict[ZoneInfo, Decision] = {}
    # By shape: the answer, and the place of the consent it names (-1: none).
    shared: dict[tuple[Any, ...], tuple[Decision, int]] = {}
    out: dict[str, Decision] = {}
    zone_of = phones.zone_finder(settings.timezone)  # zone_for, once per single-zone country
    for p, f in facts.items():
        zone = zone_of(p)
        known = f.consents or f.optouts or f.preferences or f.disconnected_at
        if not known:
            dec = blank.get(zone)
            if dec is None:
                dec = blank[zone] = decide(
                    f, channel=req.channel, purpose=req.purpose, category=req.category,
                    at=req.at, policy=policy, zone=zone,
                )  # fmt: skip
            out[p] = dec
            continue
        shape = _shape(f, zone)
        seen = shared.get(shape)
        if seen is None:
            dec = decide(
                f, channel=req.channel, purpose=req.purpose, category=req.category,
                at=req.at, policy=policy, zone=zone,
            )  # fmt: skip
            ids = [c.id for c in f.consents]
            place = ids.index(dec.consent_id) if dec.consent_id in ids else -1
            shared[shape] = (dec, place)
            out[p] = dec
            continue
        dec, place = seen
        if place >= 0 and f.consents[place].id != dec.consent_id:
            dec = Decision(dec.decision, dec.reason, f.consents[place].id, dec.next_allowed_at)
        out[p] = dec
    return out


def count_allows(
    session: Session,
    settings: Settings,
    req: CheckRequest,
    facts: dict[str, Facts],
    decisions: dict[str, Decision],
) -> None:
    """Count a batch's allows against their holders' caps, in ``session``'s transaction.

    An allow beyond a holder's cap becomes ``frequency_capped`` in ``decisions``.
    Numbers are counted in sorted order: two batches lock the counter rows of
    their holders in the same order, so they can wait for each other but never
    deadlock on PostgreSQL.
    """
    if req.purpose == "service":
        return
    for phone in sorted(p for p, d in decisions.items() if d.allowed):
        limits = counted_cap(facts[phone], req.channel)
        if limits is None:
            continue
        zone = zone_for(phone, settings)
        full = tally.count(
            session.connection(), phone, req.channel, limits, facts[phone], req.at, zone
        )
        if full is not None:
            decisions[phone] = decide(
                full,
                channel=req.channel,
                purpose=req.purpose,
                category=req.category,
                at=req.at,
                policy=policy_of(settings),
                zone=zone,
            )


@contextmanager
def cycles_collected_after() -> Iterator[None]:
    """Run a batch's work without the cyclic garbage collector, and let it run after.

    A batch makes tens of thousands of objects that live until its answer is
    sent; the collector, triggered by every 700 allocations, promotes them and
    then walks the whole heap (the app's modules, phonenumbers' metadata) again
    and again: about a fifth of a batch's CPU (docs/performance.md). The
    objects are freed by reference counting as usual; the few cycles wait for
    the next collection. Nested or concurrent use is safe: only the outermost
    holder that found the collector on turns it back on.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def check_batch(
    session: Session,
    settings: Settings,
    req: CheckRequest,
    inputs: Sequence[Any],
    read: Session | None = None,
    budget: ColdBudget | None = None,
    standby: Standby | None = None,
    overlap: bool = False,
) -> BatchResult:
    """Answer a batch: every number decided and logged, invalid entries reported in place.

    With facts from a standby, one query on the primary finds the numbers whose
    facts changed since the standby may lack commits (and verifies the copies);
    theirs are read again from the primary (all of them, when the calling
    address changed: ``Unconfirmed``). ``overlap``: as ``check_many``'s.
    """
    if len(inputs) > settings.max_batch:
        raise TooLarge(f"a batch holds at most {settings.max_batch} numbers", field="phones")
    with cycles_collected_after():
        return _check_batch(session, settings, req, inputs, read, budget, standby, overlap)


def _check_batch(
    session: Session,
    settings: Settings,
    req: CheckRequest,
    inputs: Sequence[Any],
    read: Session | None,
    budget: ColdBudget | None,
    standby: Standby | None,
    overlap: bool = False,
) -> BatchResult:
    parsed = normalize_many(inputs, settings.default_region)
    distinct = list(dict.fromkeys(p for _, p, _ in parsed if p is not None))
    source = read or session
    try:
        state = known_seq(source)  # as in check_one: the registry state the answers rest on
        facts, held = load_checked(
            source, req.sender, distinct, req.at,
            None if standby is not None else req.copies, req.caller,
        )  # fmt: skip
    except DBAPIError as exc:
        if standby is None:
            raise
        standby.failed()
        raise StandbyFailed from exc
    if standby is not None:
        changed = recent_changes(
            session, req.sender, distinct, standby.missing_since, req.copies, req.caller
        )
        if req.caller is not None and req.caller in changed:
            raise Unconfirmed  # the calling address changed: the whole batch from the primary
        if changed:
            facts |= load_facts(session, req.sender, sorted(changed), req.at)
    if budget is not None:
        # A number with neither an opt-out nor a consent of the sender is cold (``cold``).
        budget.spend(
            sum(
                1
                for f in facts.values()
                if not (f.optouts or f.consents) or cold(f, req.channel, req.at)
            )
        )
    decisions = decide_all(settings, req, facts)
    count_allows(session, settings, req, facts, decisions)
    now = utcnow()
    # Counted per entry, as listed: a number given twice counts twice.
    allowing = {p for p, d in decisions.items() if d.decision == "allow"}
    valid = [p for _, p, _ in parsed if p is not None]
    invalid = len(parsed) - len(valid)
    allowed = len(allowing) if len(valid) == len(decisions) else sum(p in allowing for p in valid)
    denied = len(parsed) - allowed - invalid
    carrier = held.carrier_id if held is not None else None
    counts = (len(parsed), allowed, denied, invalid)
    batch_id = log_batch(session, req, decisions, now, counts, carrier, overlap)
    valid_until = valid_until_of(settings, now)
    claims = receipts.Claims(
        sender=req.sender.code,
        channel=req.channel,
        purpose=req.purpose,
        checked_at=iso(now),
        registry_seq=state,
        batch_id=batch_id,
        caller=req.caller,
        valid_until=iso(valid_until),
    )
    check_id = receipts.sign(settings, claims)
    return BatchResult(
        parsed, decisions, allowed, denied, invalid, check_id, req, batch_id, now, state,
        valid_until,
        read_from="primary" if standby is None else "replica",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NetworkAnswer:
    """A carrier's network-side check: the answer, and who answers for the calling address."""

    phone: str
    caller: str
    decision: Decision
    chain: Chain | None  # None: no sender registered the calling address
    result: CheckResult | None  # the logged, signed check, when a sender answers for it


def network_check(
    dbs: CheckSessions,
    settings: Settings,
    carrier: Caller,
    phone: str,
    caller_address: str,
    channel: str,
    purpose: str,
    at: datetime | None,
) -> NetworkAnswer:
    """Answer a carrier asking, at its switch, whether ``caller_address`` may contact ``phone``.

    The carrier must answer for one side of the call: the called number is in
    one of its ranges (it terminates the call), or it connects the calling
    address (it originates it, as its attestation or its range). Anything else
    is ``not_your_number``. The calling address names the sender; the check is
    then that sender's as ``/check`` with ``from`` would answer it, logged with
    the carrier as the one that asked (``check_log.asked_by_id``), so it never
    counts as the sender's own check before a contact.
    """
    session = dbs.lookup
    chain = chain_of(session, caller_address)
    terminating = holder_of(session, phone)
    originating = chain is not None and chain.carrier_id == carrier.org_id
    if not originating and caller_address.startswith("+"):
        held = holder_of(session, caller_address)
        originating = held is not None and held.organization_id == carrier.org_id
    if not originating and (terminating is None or terminating.organization_id != carrier.org_id):
        raise NotYourNumber(
            f"neither {phone} nor the calling address {caller_address} is yours: a carrier "
            "checks calls to its own ranges or from the addresses it connects",
            field="phone",
        )
    if chain is None:
        return NetworkAnswer(
            phone, caller_address, Decision("deny", "unregistered_caller"), None, None
        )
    now = utcnow()
    ref = sender_by_id(session, chain.sender_id, now)
    if chain.agent is not None:
        ref = replace(ref, agent_slug=chain.agent, agent_id=chain.agent_id)
    when = to_utc(at, settings.tz) if at is not None else now
    req = CheckRequest(
        ref, channel, purpose, ref.category, when, caller=caller_address, asked_by=carrier.org_id
    )
    try:
        result = check_one(dbs, settings, req, phone)
    except (Unconfirmed, StandbyFailed):  # as ``check``: asked again wholly on the primary
        result = check_one(dbs.without_standby(), settings, req, phone)
    return NetworkAnswer(phone, caller_address, result.decision, chain, result)
