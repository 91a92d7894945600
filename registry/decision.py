"""The decision of SPEC §3 as a pure function of facts.

Nothing here touches the database or the clock: the caller gathers the facts
for (phone, sender, channel) and the time T, and ``decide`` applies the rules
in order, first match wins. The same function answers live checks and the
"what would the registry have said at T" replays of the complaint desk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

REASONS = (
    "sender_suspended", "unregistered_caller", "not_marketing", "opted_out", "consent_pending",
    "reassigned", "category_blocked", "dnd", "no_consent", "quiet_hours", "frequency_capped",
    "consent", "not_registered",
)  # fmt: skip
DAY = 86_400


@dataclass(frozen=True, slots=True)
class ConsentFact:
    """A consent as known at T. ``activated_at`` is when it took effect (given or confirmed)."""

    id: int
    channels: frozenset[str]
    status: str  # pending, active, revoked, expired, void
    given_at: datetime  # the evidence's captured_at
    recorded_at: datetime
    category: str | None = None
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    pending_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class OptOutFact:
    """An opt-out: the holder refused the sender on these channels at ``received_at``."""

    channels: frozenset[str]
    received_at: datetime
    recorded_at: datetime
    expires_at: datetime | None = None  # the end the holder chose (issue 19), else for good


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the holder set for their number, and when."""

    set_at: datetime
    dnd: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()
    quiet_hours: tuple[time, time] | None = None
    # When a DND (key: the channel) or a category block (key: the category) ends,
    # for refusals the holder set for a time (issue 19); absent: until lifted.
    ends: tuple[tuple[str, datetime], ...] = ()

    def refuses(self, key: str, at: datetime) -> bool:
        """Tell whether the DND of channel ``key``, or the block of category ``key``, holds at ``at``."""
        for name, end in self.ends:
            if name == key:
                return end > at
        return True


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """The holder's cap on marketing contacts from all senders (issue 19, SPEC §3 step 9).

    ``limits`` holds, per channel, at most how many allows a local day and a
    local week may count (None: no limit on that one). ``exempt_since`` is set
    when the holder ticked "this sender may always reach me" for the sender
    asking. ``used`` is what the day and week of T have counted on the
    check's channel: the check service fills it from the counter
    (checks/tally.py), which is the authority; (0, 0) before it was read.
    """

    set_at: datetime
    limits: tuple[tuple[str, int | None, int | None], ...]
    exempt_since: datetime | None = None
    used: tuple[int, int] = (0, 0)

    def limit(self, channel: str) -> tuple[int | None, int | None] | None:
        """Return (per day, per week) on ``channel``, or None when it has no cap."""
        for name, day, week in self.limits:
            if name == channel and (day is not None or week is not None):
                return day, week
        return None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the registry knows that bears on one (phone, sender) pair."""

    sender_suspended: bool = False
    consents: tuple[ConsentFact, ...] = ()
    optouts: tuple[OptOutFact, ...] = ()
    preferences: Preferences | None = None
    disconnected_at: datetime | None = None  # the latest disconnection at or before T
    # The check named a calling address (``from``) that is not an attested,
    # live address of the sender (step 1a).
    caller_unregistered: bool = False
    cap: FrequencyCap | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The registry-wide rules: opt-in or opt-out, calling hours, fallback zone."""

    mode: str = "opt-in"
    calling_hours: tuple[time, time] = (time(8), time(21))
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: allow or deny, the reason, and what it rested on."""

    decision: str
    reason: str
    consent_id: int | None = None
    next_allowed_at: datetime | None = None

    @property
    def allowed(self) -> bool:
        """Tell whether contact is allowed."""
        return self.decision == "allow"


def _deny(reason: str, **kw: object) -> Decision:
    return Decision("deny", reason, **kw)  # type: ignore[arg-type]


def decide(
    facts: Facts,
    *,
    channel: str,
    purpose: str,
    category: str,
    at: datetime,
    policy: Policy,
    zone: ZoneInfo | None = None,
) -> Decision:
    """Apply SPEC §3 to the facts for one contact at time ``at`` (aware)."""
    if facts.sender_suspended:
        return _deny("sender_suspended")
    # Step 1a, before the purpose: a forged or unattested calling number is
    # refused even for a service notice (the carrier must block it at the switch).
    if facts.caller_unregistered:
        return _deny("unregistered_caller")
    if purpose == "service":
        return Decision("allow", "not_marketing")

    cutoff = facts.disconnected_at

    def counts(*times: datetime) -> bool:
        return cutoff is None or all(t > cutoff for t in times)

    # Step 4: the latest per-sender statement for this channel decides.
    latest_at: datetime | None = None
    latest: ConsentFact | OptOutFact | None = None
    pending = voided = False
    for c in facts.consents:
        if channel not in c.channels:
            continue
        if not counts(c.given_at, c.recorded_at):
            voided = voided or c.status in ("active", "void", "pending")
            continue
        if c.status == "void":
            voided = True
        elif c.status == "pending":
            pending = pending or c.pending_until is None or c.pending_until > at
        elif (
            c.status == "active"
            and (c.expires_at is None or c.expires_at > at)
            and (c.category is None or c.category == category)
        ):
            when = c.activated_at or c.given_at
            if latest_at is None or when > latest_at:
                latest_at, latest = when, c
    for o in facts.optouts:
        # On a tie the refusal wins: stopping contact is the safe error.
        if (
            channel in o.channels
            and counts(o.received_at, o.recorded_at)
            and (o.expires_at is None or o.expires_at > at)  # a timed block ends by itself
            and (latest_at is None or o.received_at >= latest_at)
        ):
            latest_at, latest = o.received_at, o
    if isinstance(latest, OptOutFact):
        return _deny("opted_out")
    if isinstance(latest, ConsentFact):
        return _window(at, policy, zone, facts, channel, "consent", latest.id)

    # Step 5.
    if pending:
        return _deny("consent_pending")
    if voided:
        return _deny("reassigned")

    # Step 6: the holder's own blanket preferences (only those set since the cutoff).
    prefs = facts.preferences
    if prefs is not None and counts(prefs.set_at):
        if category in prefs.blocked and prefs.refuses(category, at):
            return _deny("category_blocked")
        if channel in prefs.dnd and prefs.refuses(channel, at):
            return _deny("dnd")

    # Step 7.
    if policy.mode == "opt-in":
        return _deny("no_consent")
    return _window(at, policy, zone, facts, channel, "not_registered", None)


def _window(
    at: datetime,
    policy: Policy,
    zone: ZoneInfo | None,
    facts: Facts,
    channel: str,
    reason: str,
    consent_id: int | None,
) -> Decision:
    """Step 8: allow inside calling hours minus the holder's quiet hours, local time; then step 9."""
    prefs = facts.preferences
    quiet = None
    if prefs is not None and (
        facts.disconnected_at is None or prefs.set_at > facts.disconnected_at
    ):
        quiet = prefs.quiet_hours
    allowed = allowed_intervals(policy.calling_hours, quiet)
    local = at.astimezone(zone or policy.zone)
    now_s = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    if any(a <= now_s < b for a, b in allowed):
        full = cap_reached(facts, channel, local)
        if full is None:
            return Decision("allow", reason, consent_id=consent_id)
        # Step 9: the holder's cap is reached; a slot frees at the window's end,
        # and the answer names the first moment after it that contact is allowed.
        free = full.astimezone(UTC)
        if not _inside(free, local.tzinfo, allowed):
            free = next_opening(full, allowed) or free
        return _deny("frequency_capped", consent_id=consent_id, next_allowed_at=free)
    return _deny(
        "quiet_hours",
        consent_id=consent_id,
        next_allowed_at=next_opening(local, allowed),
    )


def counted_cap(facts: Facts, channel: str) -> tuple[int | None, int | None] | None:
    """Return the cap an allow of this sender on ``channel`` counts against, if any.

    None when the holder set no cap on the channel, exempted this sender, or
    set the cap before the number's latest disconnection (a former holder's).
    """
    cap = facts.cap
    if cap is None or cap.exempt_since is not None:
        return None
    if facts.disconnected_at is not None and cap.set_at <= facts.disconnected_at:
        return None
    return cap.limit(channel)


def cap_reached(facts: Facts, channel: str, local: datetime) -> datetime | None:
    """Return when a slot frees (local time) if the cap on ``channel`` is reached, else None."""
    limits = counted_cap(facts, channel)
    if limits is None or facts.cap is None:
        return None
    per_day, per_week = limits
    day_used, week_used = facts.cap.used
    today = local.date()
    zone = local.tzinfo
    if per_week is not None and week_used >= per_week:
        monday = today - timedelta(days=today.weekday())
        return datetime.combine(monday + timedelta(days=7), time(), tzinfo=zone)
    if per_day is not None and day_used >= per_day:
        return datetime.combine(today + timedelta(days=1), time(), tzinfo=zone)
    return None


def cap_window(at: datetime, zone: ZoneInfo) -> tuple[date, int]:
    """Return the local week (its Monday) and the day in it (0 = Monday) of ``at``: the counter's key."""
    today = at.astimezone(zone).date()
    return today - timedelta(days=today.weekday()), today.weekday()


def _intervals(window: tuple[time, time]) -> list[tuple[int, int]]:
    """Return a daily window as second-of-day intervals; a window may wrap midnight."""
    a = window[0].hour * 3600 + window[0].minute * 60
    b = window[1].hour * 3600 + window[1].minute * 60
    if a < b:
        return [(a, b)]
    return [(a, DAY), (0, b)] if b > 0 else [(a, DAY)]


def allowed_intervals(
    calling: tuple[time, time], quiet: tuple[time, time] | None
) -> list[tuple[int, int]]:
    """Return the calling hours minus the quiet hours, as sorted second-of-day intervals."""
    result = _intervals(calling)
    if quiet is not None and quiet[0] != quiet[1]:
        for qa, qb in _intervals(quiet):
            cut: list[tuple[int, int]] = []
            for a, b in result:
                if qb <= a or qa >= b:
                    cut.append((a, b))
                    continue
                if a < qa:
                    cut.append((a, qa))
                if qb < b:
                    cut.append((qb, b))
            result = cut
    return sorted(result)


def next_opening(local: datetime, allowed: list[tuple[int, int]]) -> datetime | None:
    """Return the next moment, in UTC, at which an allowed interval opens."""
    if not allowed:
        return None
    zone = local.tzinfo
    at = local.astimezone(UTC)
    changes = _offset_changes(zone, at)
    offset = local.utcoffset() or timedelta(0)
    today = local.date()
    candidates: list[datetime] = []
    for days in range(3):
        day = today + timedelta(days=days)
        for start, _end in allowed:
            # An opening at 00:00 that continues yesterday's interval is not an opening.
            if start == 0 and any(b == DAY for _a, b in allowed):
                continue
            wall = time(start // 3600, (start % 3600) // 60)
            if not changes:
                # No offset change ahead: every later opening has today's offset.
                opening = datetime.combine(day, wall, tzinfo=UTC) - offset
                if opening > at:
                    return opening
                continue
            # Across a DST change a wall time may occur twice (both folds are
            # candidates) or never (the window then opens at the change itself).
            opening = datetime.combine(day, wall, tzinfo=zone)
            candidates.append(opening.astimezone(UTC))
            candidates.append(opening.replace(fold=1).astimezone(UTC))
    later = [u for u in (*candidates, *changes) if u > at and _inside(u, zone, allowed)]
    return min(later, default=None)


def _inside(moment: datetime, zone: tzinfo | None, allowed: list[tuple[int, int]]) -> bool:
    """Tell whether a moment falls in one of the allowed intervals, in local time."""
    t = moment.astimezone(zone)
    s = t.hour * 3600 + t.minute * 60 + t.second
    return any(a <= s < b for a, b in allowed)


def _offset_changes(zone: tzinfo | None, at: datetime) -> list[datetime]:
    """Return the moments (UTC) within three days after ``at`` when the zone's offset changes."""
    found = _changes_from(zone, at.date())
    if not found:  # the common case: no change in sight
        return []
    end = at + timedelta(days=3)
    return [c for c in found if at < c <= end]


@lru_cache(maxsize=4096)
def _changes_from(zone: tzinfo | None, day: date) -> tuple[datetime, ...]:
    """Return a zone's offset changes in the four UTC days from ``day``.

    Offsets are sampled once a day, then bisected to the second: zones change at
    most once in a day, so no change is missed. Cached per zone and day, since a
    scrub at night asks the same question for every number.
    """
    changes = []
    for n in range(4):
        lo = datetime.combine(day + timedelta(days=n), time(), tzinfo=UTC)
        hi = lo + timedelta(days=1)
        before = lo.astimezone(zone).utcoffset()
        if hi.astimezone(zone).utcoffset() == before:
            continue
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(zone).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        changes.append(hi.replace(microsecond=0))  # zones change on whole seconds
    return tuple(changes)
