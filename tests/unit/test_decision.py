"""SPEC §3 against ``registry.decision.decide``: every rule, every reason, and the invariants."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.decision import (
    REASONS,
    ConsentFact,
    Decision,
    Facts,
    FrequencyCap,
    OptOutFact,
    Policy,
    Preferences,
    decide,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOTH = frozenset({"sms", "voice"})
SMS = frozenset({"sms"})
# 2030-01-15 12:00 in Shanghai: inside the default calling hours 08:00-21:00.
NOON = datetime(2030, 1, 15, 4, 0, tzinfo=UTC)
OPT_IN = Policy()
OPT_OUT = Policy(mode="opt-out")


def local(hh: int, mm: int = 0, day: int = 15) -> datetime:
    """Return 2030-01-<day> hh:mm in Shanghai, as UTC."""
    return datetime(2030, 1, day, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)


def consent(
    id_: int = 1,
    *,
    status: str = "active",
    given: datetime | None = None,
    channels: frozenset[str] = BOTH,
    category: str | None = None,
    **kw: object,
) -> ConsentFact:
    """Return a consent given (and recorded a minute later) ``given``, a week before NOON by default."""
    given = given or NOON - timedelta(days=7)
    return ConsentFact(
        id=id_,
        channels=channels,
        status=status,
        given_at=given,
        recorded_at=given + timedelta(minutes=1),
        category=category,
        **kw,  # type: ignore[arg-type]
    )


def optout(at: datetime, channels: frozenset[str] = BOTH) -> OptOutFact:
    """Return an opt-out received at ``at`` and recorded a minute later."""
    return OptOutFact(channels=channels, received_at=at, recorded_at=at + timedelta(minutes=1))


def check(
    facts: Facts,
    *,
    channel: str = "sms",
    purpose: str = "marketing",
    category: str = "finance",
    at: datetime = NOON,
    policy: Policy = OPT_IN,
    zone: ZoneInfo | None = None,
) -> Decision:
    """Ask ``decide`` with the usual defaults."""
    return decide(
        facts, channel=channel, purpose=purpose, category=category, at=at, policy=policy, zone=zone
    )


def reason(facts: Facts, **kw: object) -> tuple[str, str]:
    """Return (decision, reason)."""
    d = check(facts, **kw)  # type: ignore[arg-type]
    return d.decision, d.reason


# --- Step 1 and 2: suspension, then service -----------------------------------------


def test_a_suspended_sender_is_denied_even_with_consent_and_for_service() -> None:
    facts = Facts(sender_suspended=True, consents=(consent(),))
    assert reason(facts) == ("deny", "sender_suspended")
    assert reason(facts, purpose="service") == ("deny", "sender_suspended")


def test_service_is_allowed_over_optout_dnd_and_night() -> None:
    facts = Facts(
        optouts=(optout(NOON - timedelta(hours=1)),),
        preferences=Preferences(set_at=NOON - timedelta(days=1), dnd=BOTH, blocked={"finance"}),  # type: ignore[arg-type]
    )
    assert reason(facts, purpose="service") == ("allow", "not_marketing")
    assert reason(facts, purpose="service", at=local(3)) == ("allow", "not_marketing")


# --- Step 4: the latest per-sender statement -----------------------------------------


def test_an_active_consent_allows_and_names_itself() -> None:
    d = check(Facts(consents=(consent(42),)))
    assert (d.decision, d.reason, d.consent_id, d.next_allowed_at) == ("allow", "consent", 42, None)


def test_a_later_optout_denies() -> None:
    facts = Facts(consents=(consent(),), optouts=(optout(NOON - timedelta(days=1)),))
    assert reason(facts) == ("deny", "opted_out")


def test_a_later_consent_wins_over_an_older_optout() -> None:
    facts = Facts(
        consents=(consent(given=NOON - timedelta(days=1)),),
        optouts=(optout(NOON - timedelta(days=7)),),
    )
    assert reason(facts) == ("allow", "consent")


def test_optout_and_consent_at_the_same_moment_denies() -> None:
    t = NOON - timedelta(days=2)
    facts = Facts(consents=(consent(given=t),), optouts=(optout(t),))
    assert reason(facts) == ("deny", "opted_out")


def test_a_consent_confirmed_after_an_optout_counts_from_its_confirmation() -> None:
    given, opted, confirmed = (NOON - timedelta(days=d) for d in (5, 4, 3))
    facts = Facts(
        consents=(consent(given=given, activated_at=confirmed),), optouts=(optout(opted),)
    )
    assert reason(facts) == ("allow", "consent")


def test_statements_are_per_channel() -> None:
    facts = Facts(consents=(consent(channels=SMS),), optouts=(optout(NOON, channels=SMS),))
    assert reason(facts, channel="sms") == ("deny", "opted_out")
    assert reason(facts, channel="voice") == ("deny", "no_consent")
    facts = Facts(consents=(consent(channels=SMS),))
    assert reason(facts, channel="voice") == ("deny", "no_consent")


def test_an_optout_without_any_consent_denies() -> None:
    assert reason(Facts(optouts=(optout(NOON),)), policy=OPT_OUT) == ("deny", "opted_out")


def test_consent_limited_to_another_category_does_not_allow() -> None:
    facts = Facts(consents=(consent(category="insurance"),))
    assert reason(facts, category="finance") == ("deny", "no_consent")
    assert reason(facts, category="insurance") == ("allow", "consent")


def test_consent_without_category_covers_every_category() -> None:
    facts = Facts(consents=(consent(category=None),))
    assert reason(facts, category="real_estate") == ("allow", "consent")


def test_an_expired_consent_does_not_allow() -> None:
    facts = Facts(consents=(consent(expires_at=NOON - timedelta(seconds=1)),))
    assert reason(facts) == ("deny", "no_consent")
    # The expiry is a moment: until then the consent holds.
    facts = Facts(consents=(consent(expires_at=NOON + timedelta(seconds=1)),))
    assert reason(facts) == ("allow", "consent")


def test_an_expired_consent_falls_back_to_the_policy() -> None:
    facts = Facts(consents=(consent(expires_at=NOON - timedelta(days=1)),))
    assert reason(facts, policy=OPT_OUT) == ("allow", "not_registered")


@pytest.mark.parametrize("status", ["revoked", "expired"])
def test_a_revoked_or_expired_consent_does_not_allow(status: str) -> None:
    assert reason(Facts(consents=(consent(status=status),))) == ("deny", "no_consent")


# --- Step 5: pending and voided ------------------------------------------------------


def test_a_pending_consent_denies_as_pending() -> None:
    facts = Facts(consents=(consent(status="pending", pending_until=NOON + timedelta(days=1)),))
    assert reason(facts) == ("deny", "consent_pending")


def test_a_pending_consent_past_its_pending_period_is_no_consent() -> None:
    facts = Facts(consents=(consent(status="pending", pending_until=NOON - timedelta(minutes=1)),))
    assert reason(facts) == ("deny", "no_consent")


def test_an_active_consent_wins_over_another_pending_one() -> None:
    facts = Facts(consents=(consent(1), consent(2, status="pending")))
    assert reason(facts) == ("allow", "consent")


def test_a_voided_consent_denies_as_reassigned() -> None:
    cut = NOON - timedelta(days=3)
    facts = Facts(consents=(consent(status="void"),), disconnected_at=cut)
    assert reason(facts) == ("deny", "reassigned")
    # Even under an opt-out policy, the old holder's consent must not reach the new holder.
    assert reason(facts, policy=OPT_OUT) == ("deny", "reassigned")


def test_a_consent_from_before_the_disconnection_denies_as_reassigned() -> None:
    cut = NOON - timedelta(days=3)
    facts = Facts(consents=(consent(given=cut - timedelta(days=10)),), disconnected_at=cut)
    assert reason(facts) == ("deny", "reassigned")


def test_a_consent_given_before_but_recorded_after_the_disconnection_does_not_count() -> None:
    cut = NOON - timedelta(days=3)
    c = ConsentFact(1, BOTH, "active", cut - timedelta(hours=1), cut + timedelta(hours=1))
    assert reason(Facts(consents=(c,), disconnected_at=cut)) == ("deny", "reassigned")


def test_a_consent_from_the_new_holder_after_the_disconnection_allows() -> None:
    cut = NOON - timedelta(days=3)
    facts = Facts(
        consents=(
            consent(1, given=cut - timedelta(days=10)),
            consent(2, given=cut + timedelta(days=1)),
        ),
        disconnected_at=cut,
    )
    d = check(facts)
    assert (d.decision, d.reason, d.consent_id) == ("allow", "consent", 2)


def test_an_optout_from_before_the_disconnection_no_longer_counts() -> None:
    cut = NOON - timedelta(days=3)
    facts = Facts(optouts=(optout(cut - timedelta(days=1)),), disconnected_at=cut)
    assert reason(facts, policy=OPT_OUT) == ("allow", "not_registered")


# --- Step 6: the holder's blanket preferences ---------------------------------------


def prefs(set_at: datetime = NOON - timedelta(days=1), **kw: object) -> Preferences:
    """Return preferences set at ``set_at``."""
    for name in ("dnd", "blocked"):
        if name in kw:
            kw[name] = frozenset(kw[name])  # type: ignore[arg-type]
    return Preferences(set_at=set_at, **kw)  # type: ignore[arg-type]


def test_a_blocked_category_denies() -> None:
    facts = Facts(preferences=prefs(blocked={"finance"}))
    assert reason(facts, category="finance", policy=OPT_OUT) == ("deny", "category_blocked")
    assert reason(facts, category="retail", policy=OPT_OUT) == ("allow", "not_registered")


def test_dnd_denies_on_its_channel_only() -> None:
    facts = Facts(preferences=prefs(dnd={"voice"}))
    assert reason(facts, channel="voice", policy=OPT_OUT) == ("deny", "dnd")
    assert reason(facts, channel="sms", policy=OPT_OUT) == ("allow", "not_registered")


def test_category_block_is_reported_before_dnd() -> None:
    facts = Facts(preferences=prefs(dnd=BOTH, blocked={"finance"}))
    assert reason(facts) == ("deny", "category_blocked")


def test_a_consent_for_the_sender_wins_over_dnd_and_category_blocks() -> None:
    facts = Facts(consents=(consent(),), preferences=prefs(dnd=BOTH, blocked={"finance"}))
    assert reason(facts) == ("allow", "consent")


def test_pending_is_reported_before_dnd() -> None:
    facts = Facts(consents=(consent(status="pending"),), preferences=prefs(dnd=BOTH))
    assert reason(facts) == ("deny", "consent_pending")


def test_preferences_set_before_a_disconnection_are_ignored() -> None:
    cut = NOON - timedelta(days=3)
    old = prefs(set_at=cut - timedelta(days=1), dnd=BOTH, blocked={"finance"})
    old = Preferences(old.set_at, old.dnd, old.blocked, (time(9), time(20)))
    facts = Facts(preferences=old, disconnected_at=cut)
    assert reason(facts, policy=OPT_OUT) == ("allow", "not_registered")
    # The old holder's quiet hours no longer narrow the window either.
    assert reason(facts, policy=OPT_OUT, at=local(8, 30)) == ("allow", "not_registered")
    # The same preferences set after the disconnection apply.
    new = Preferences(cut + timedelta(days=1), old.dnd, old.blocked, old.quiet_hours)
    assert reason(Facts(preferences=new, disconnected_at=cut)) == ("deny", "category_blocked")


# --- Step 7: the policy --------------------------------------------------------------


def test_nothing_recorded_is_a_refusal_under_opt_in() -> None:
    assert reason(Facts()) == ("deny", "no_consent")


def test_nothing_recorded_is_allowed_under_opt_out() -> None:
    assert reason(Facts(), policy=OPT_OUT) == ("allow", "not_registered")


# --- Step 8: the window -------------------------------------------------------------


def test_outside_calling_hours_denies_with_the_next_opening() -> None:
    d = check(Facts(consents=(consent(7),)), at=local(21, 30))
    assert (d.decision, d.reason, d.consent_id) == ("deny", "quiet_hours", 7)
    assert d.next_allowed_at == local(8, 0, day=16)
    assert d.next_allowed_at.tzinfo == UTC


def test_calling_hours_are_half_open() -> None:
    facts = Facts(consents=(consent(),))
    assert reason(facts, at=local(8)) == ("allow", "consent")
    assert reason(facts, at=local(21) - timedelta(microseconds=1)) == ("allow", "consent")
    assert reason(facts, at=local(21)) == ("deny", "quiet_hours")


def test_just_after_midnight_the_opening_is_the_same_local_day() -> None:
    d = check(Facts(), policy=OPT_OUT, at=local(0, 5, day=16))
    assert d.reason == "quiet_hours"
    assert d.next_allowed_at == local(8, 0, day=16)


def test_opt_out_policy_still_respects_the_window() -> None:
    d = check(Facts(), policy=OPT_OUT, at=local(6))
    assert (d.decision, d.reason, d.next_allowed_at) == ("deny", "quiet_hours", local(8))


def test_the_holders_quiet_hours_narrow_the_window() -> None:
    facts = Facts(consents=(consent(),), preferences=prefs(quiet_hours=(time(12), time(14))))
    d = check(facts, at=local(12, 30))
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", local(14))
    assert reason(facts, at=local(14)) == ("allow", "consent")
    assert reason(facts, at=local(11, 59)) == ("allow", "consent")


def test_quiet_hours_wrapping_midnight() -> None:
    facts = Facts(consents=(consent(),), preferences=prefs(quiet_hours=(time(20), time(9))))
    assert reason(facts, at=local(9)) == ("allow", "consent")
    assert reason(facts, at=local(19, 59)) == ("allow", "consent")
    d = check(facts, at=local(8, 30))
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", local(9))
    d = check(facts, at=local(20, 30))
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", local(9, day=16))


def test_quiet_hours_covering_all_calling_hours_leave_no_next_opening() -> None:
    facts = Facts(consents=(consent(),), preferences=prefs(quiet_hours=(time(7), time(22))))
    d = check(facts, at=local(12))
    assert (d.decision, d.reason, d.next_allowed_at) == ("deny", "quiet_hours", None)


def test_calling_hours_wrapping_midnight() -> None:
    policy = Policy(mode="opt-out", calling_hours=(time(22), time(2)))
    assert reason(Facts(), policy=policy, at=local(23)) == ("allow", "not_registered")
    assert reason(Facts(), policy=policy, at=local(1, 59)) == ("allow", "not_registered")
    d = check(Facts(), policy=policy, at=local(1, 0) + timedelta(hours=1))
    # 02:00 is closed; the window opens again at 22:00 that day, not at 00:00.
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", local(22))


def test_the_window_is_read_in_the_numbers_time_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    at = datetime(2030, 1, 15, 12, tzinfo=new_york)  # 01:00 in Shanghai the next day
    facts = Facts(consents=(consent(),))
    assert reason(facts, at=at) == ("deny", "quiet_hours")
    assert reason(facts, at=at, zone=new_york) == ("allow", "consent")
    d = check(facts, at=datetime(2030, 1, 15, 22, tzinfo=new_york), zone=new_york)
    assert d.next_allowed_at == datetime(2030, 1, 16, 8, tzinfo=new_york).astimezone(UTC)


NEW_YORK = ZoneInfo("America/New_York")


def test_a_window_opening_inside_the_spring_forward_gap_opens_at_the_change() -> None:
    # 2030-03-10 in New York: 02:00 EST jumps to 03:00 EDT (07:00 UTC), so 02:30 never
    # happens; at 03:00 EDT the clock is already past 02:30 and the window is open.
    policy = Policy("opt-out", (time(2, 30), time(21)), NEW_YORK)
    d = check(Facts(), policy=policy, at=datetime(2030, 3, 10, 6, tzinfo=UTC))
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", datetime(2030, 3, 10, 7, tzinfo=UTC))


def test_in_the_repeated_hour_the_next_opening_is_still_in_the_future() -> None:
    # 2030-11-03 in New York: 01:00-02:00 happens twice. At 01:10 EST (the second pass)
    # a window opening at 01:30 opens at 01:30 EST, not at the 01:30 EDT already past.
    policy = Policy("opt-out", (time(1, 30), time(21)), NEW_YORK)
    at = datetime(2030, 11, 3, 6, 10, tzinfo=UTC)
    d = check(Facts(), policy=policy, at=at)
    assert (d.reason, d.next_allowed_at) == (
        "quiet_hours",
        datetime(2030, 11, 3, 6, 30, tzinfo=UTC),
    )


def test_falling_back_into_the_window_opens_it_at_the_change() -> None:
    # Window 00:30-01:30; at 01:45 EDT it is closed, but at 06:00 UTC the clock falls back
    # to 01:00 EST, inside the window again.
    policy = Policy("opt-out", (time(0, 30), time(1, 30)), NEW_YORK)
    d = check(Facts(), policy=policy, at=datetime(2030, 11, 3, 5, 45, tzinfo=UTC))
    assert (d.reason, d.next_allowed_at) == ("quiet_hours", datetime(2030, 11, 3, 6, tzinfo=UTC))


CUT = NOON - timedelta(days=3)
ONE_OF_EACH = {
    "sender_suspended": (Facts(sender_suspended=True), {}),
    # Even a service notice, and even with a consent: the calling number is not the sender's.
    "unregistered_caller": (
        Facts(consents=(consent(),), caller_unregistered=True),
        {"purpose": "service"},
    ),
    "not_marketing": (Facts(), {"purpose": "service"}),
    "opted_out": (Facts(optouts=(optout(NOON - timedelta(hours=1)),)), {}),
    "consent_pending": (Facts(consents=(consent(status="pending"),)), {}),
    "reassigned": (Facts(consents=(consent(status="void"),), disconnected_at=CUT), {}),
    "category_blocked": (Facts(preferences=Preferences(CUT, blocked=frozenset({"finance"}))), {}),
    "dnd": (Facts(preferences=Preferences(CUT, dnd=SMS)), {}),
    "no_consent": (Facts(), {}),
    "quiet_hours": (Facts(consents=(consent(),)), {"at": local(22)}),
    "frequency_capped": (
        Facts(consents=(consent(),), cap=FrequencyCap(CUT, (("sms", 2, None),), used=(2, 2))),
        {},
    ),
    "consent": (Facts(consents=(consent(),)), {}),
    "not_registered": (Facts(), {"policy": OPT_OUT}),
}


@pytest.mark.parametrize("expected", REASONS)
def test_every_reason_of_the_spec_is_reachable(expected: str) -> None:
    facts, kw = ONE_OF_EACH[expected]
    d = check(facts, **kw)  # type: ignore[arg-type]
    assert d.reason == expected
    assert d.allowed == (expected in ("not_marketing", "consent", "not_registered"))


# --- Step 9: the holder's frequency cap (issue 19) ---------------------------------------


def capped(
    used: tuple[int, int], day: int | None = 3, week: int | None = None, **kw: object
) -> Facts:
    """Return a consent and a cap on texts of ``day`` a day and ``week`` a week, ``used`` so far."""
    cap = FrequencyCap(NOON - timedelta(days=30), (("sms", day, week),), used=used, **kw)  # type: ignore[arg-type]
    return Facts(consents=(consent(),), cap=cap)


def test_cap_allows_below_the_limit_and_denies_at_it() -> None:
    assert reason(capped((2, 2))) == ("allow", "consent")
    d = check(capped((3, 3)))
    assert (d.decision, d.reason) == ("deny", "frequency_capped")
    # The day is full: the next slot is tomorrow, at the first allowed hour (08:00 local).
    assert d.next_allowed_at == local(8, day=16)


def test_a_full_week_frees_a_slot_on_the_next_local_monday() -> None:
    # 2030-01-15 is a Tuesday; the next week starts Monday the 21st.
    d = check(capped((1, 5), day=3, week=5))
    assert d.reason == "frequency_capped"
    assert d.next_allowed_at == local(8, day=21)


def test_the_slot_frees_at_local_midnight_when_quiet_hours_allow_it() -> None:
    d = check(capped((3, 3)), policy=Policy(calling_hours=(time(0), time(0))))
    assert d.next_allowed_at == local(0, day=16)


def test_cap_is_per_channel_and_an_exempt_sender_passes() -> None:
    assert reason(capped((3, 3)), channel="voice") == ("allow", "consent")
    exempt = capped((3, 3), exempt_since=NOON - timedelta(days=1))
    assert reason(exempt) == ("allow", "consent")


def test_cap_comes_after_quiet_hours_and_never_touches_service() -> None:
    assert reason(capped((3, 3)), at=local(22)) == ("deny", "quiet_hours")
    assert reason(capped((3, 3)), purpose="service") == ("allow", "not_marketing")


def test_a_former_holders_cap_does_not_count() -> None:
    facts = capped((3, 3))
    cut = NOON - timedelta(days=1)
    later = Facts(
        consents=(consent(given=cut + timedelta(hours=1)),), cap=facts.cap, disconnected_at=cut
    )
    assert reason(later) == ("allow", "consent")


# --- Refusals with an end the holder chose (issue 19) ---------------------------------------


def test_a_timed_dnd_or_category_block_stops_counting_at_its_end() -> None:
    end = NOON + timedelta(hours=1)
    dnd = Facts(preferences=Preferences(CUT, dnd=SMS, ends=(("sms", end),)))
    assert reason(dnd, policy=OPT_OUT) == ("deny", "dnd")
    assert reason(dnd, policy=OPT_OUT, at=end) == ("allow", "not_registered")
    block = Facts(
        preferences=Preferences(CUT, blocked=frozenset({"finance"}), ends=(("finance", end),))
    )
    assert reason(block, policy=OPT_OUT) == ("deny", "category_blocked")
    assert reason(block, policy=OPT_OUT, at=end) == ("allow", "not_registered")


def test_a_timed_sender_block_ends_and_the_consent_speaks_again() -> None:
    end = NOON + timedelta(minutes=5)
    block = OptOutFact(BOTH, NOON - timedelta(days=1), NOON - timedelta(days=1), expires_at=end)
    facts = Facts(consents=(consent(),), optouts=(block,))
    assert reason(facts) == ("deny", "opted_out")
    assert reason(facts, at=end) == ("allow", "consent")


# --- Properties ------------------------------------------------------------------------

ZONES = [
    "Asia/Shanghai",
    "America/New_York",  # DST
    "Europe/London",  # DST at 01:00 UTC
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "America/Santiago",  # DST changes at local midnight
    "Pacific/Kiritimati",  # +14
]
CHANNELS = ["sms", "voice"]
CATEGORIES = ["finance", "retail", "insurance"]
START = datetime(2029, 12, 1, tzinfo=UTC)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

instants = st.integers(min_value=0, max_value=400 * 24 * 60).map(
    lambda m: START + timedelta(minutes=m)
)
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
window = st.tuples(clock, clock).filter(lambda w: w[0] != w[1])
channel_sets = st.sampled_from([SMS, frozenset({"voice"}), BOTH])


@st.composite
def consent_facts(draw: st.DrawFn, id_: int) -> ConsentFact:
    given = draw(instants)
    status = draw(st.sampled_from(["pending", "active", "active", "revoked", "expired", "void"]))
    return ConsentFact(
        id=id_,
        channels=draw(channel_sets),
        status=status,
        given_at=given,
        recorded_at=given + timedelta(minutes=draw(st.integers(0, 600))),
        category=draw(st.none() | st.sampled_from(CATEGORIES)),
        activated_at=draw(
            st.none() | st.integers(0, 30 * 24 * 60).map(lambda m: given + timedelta(minutes=m))
        ),
        expires_at=draw(st.none() | instants),
        pending_until=draw(st.none() | instants),
    )


optout_facts = st.builds(
    lambda ch, t, lag: OptOutFact(ch, t, t + timedelta(minutes=lag)),
    channel_sets,
    instants,
    st.integers(0, 600),
)
preference_facts = st.builds(
    Preferences,
    set_at=instants,
    dnd=st.frozensets(st.sampled_from(CHANNELS)),
    blocked=st.frozensets(st.sampled_from(CATEGORIES)),
    quiet_hours=st.none() | window,
)


@st.composite
def all_facts(draw: st.DrawFn) -> Facts:
    n = draw(st.integers(0, 3))
    return Facts(
        sender_suspended=draw(st.booleans()),
        consents=tuple(draw(consent_facts(i + 1)) for i in range(n)),
        optouts=tuple(draw(st.lists(optout_facts, max_size=2))),
        preferences=draw(st.none() | preference_facts),
        disconnected_at=draw(st.none() | instants),
    )


policies = st.builds(
    Policy,
    mode=st.sampled_from(["opt-in", "opt-out"]),
    calling_hours=window,
    zone=st.sampled_from(ZONES).map(ZoneInfo),
)


def in_range(minute: int, w: tuple[time, time]) -> bool:
    """Tell whether a minute of the day lies in [start, end), a window that may wrap."""
    a, b = w[0].hour * 60 + w[0].minute, w[1].hour * 60 + w[1].minute
    return a <= minute < b if a < b else minute >= a or minute < b


def open_at(u: datetime, policy: Policy, quiet: tuple[time, time] | None) -> bool:
    """Tell, independently of the code under test, whether instant ``u`` is in the window."""
    t = u.astimezone(policy.zone)
    minute = t.hour * 60 + t.minute
    return in_range(minute, policy.calling_hours) and not (quiet and in_range(minute, quiet))


def live_quiet(facts: Facts) -> tuple[time, time] | None:
    """Return the quiet hours that count: those set after the latest disconnection."""
    p = facts.preferences
    if p is None or (facts.disconnected_at is not None and p.set_at <= facts.disconnected_at):
        return None
    return p.quiet_hours


@FAST
@given(
    facts=all_facts(),
    policy=policies,
    at=instants,
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
    lead=st.integers(0, 60 * 24 * 30),
)
def test_an_optout_later_than_a_consent_never_allows_marketing(
    facts: Facts, policy: Policy, at: datetime, channel: str, category: str, lead: int
) -> None:
    # The opt-out comes after every consent took effect, and after the disconnection.
    times = [c.activated_at or c.given_at for c in facts.consents]
    times += [facts.disconnected_at] if facts.disconnected_at else []
    when = max([*times, START]) + timedelta(minutes=lead)
    if facts.disconnected_at is not None and when <= facts.disconnected_at:
        when = facts.disconnected_at + timedelta(seconds=1)  # only later records count
    facts = Facts(
        facts.sender_suspended,
        facts.consents,
        (*facts.optouts, optout(when, frozenset({channel}))),
        facts.preferences,
        facts.disconnected_at,
    )
    d = check(facts, channel=channel, category=category, at=at, policy=policy)
    assert d.decision == "deny"
    assert d.reason in ("sender_suspended", "opted_out")


@FAST
@given(facts=all_facts(), policy=policies, at=instants, channel=st.sampled_from(CHANNELS))
def test_service_is_allowed_unless_suspended(
    facts: Facts, policy: Policy, at: datetime, channel: str
) -> None:
    d = check(facts, channel=channel, purpose="service", at=at, policy=policy)
    if facts.sender_suspended:
        assert (d.decision, d.reason) == ("deny", "sender_suspended")
    else:
        assert (d.decision, d.reason) == ("allow", "not_marketing")


@FAST
@given(
    facts=all_facts(),
    policy=policies,
    at=instants,
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
)
def test_nothing_marketing_is_allowed_outside_the_window(
    facts: Facts, policy: Policy, at: datetime, channel: str, category: str
) -> None:
    d = check(facts, channel=channel, category=category, at=at, policy=policy)
    assert d.reason in REASONS
    if d.allowed:
        assert d.reason in ("consent", "not_registered")
        assert open_at(at, policy, live_quiet(facts))
    if d.reason == "quiet_hours":
        assert not open_at(at, policy, live_quiet(facts))


@FAST
@given(
    new=all_facts(),
    old=all_facts(),
    policy=policies,
    at=instants,
    channel=st.sampled_from(CHANNELS),
    category=st.sampled_from(CATEGORIES),
    cut_min=st.integers(0, 400 * 24 * 60),
)
def test_records_before_a_disconnection_never_count(
    new: Facts,
    old: Facts,
    policy: Policy,
    at: datetime,
    channel: str,
    category: str,
    cut_min: int,
) -> None:
    cut = START + timedelta(minutes=cut_min)
    # ``new`` keeps only what was given and recorded after the disconnection, ``old`` only
    # what came before it; the old holder's records may add ``reassigned``, nothing else.
    keep_new = [c for c in new.consents if c.given_at > cut and c.recorded_at > cut]
    old_consents = [c for c in old.consents if c.recorded_at <= cut]
    new_optouts = [o for o in new.optouts if o.received_at > cut and o.recorded_at > cut]
    old_optouts = [o for o in old.optouts if o.received_at <= cut]
    new_prefs = new.preferences if new.preferences and new.preferences.set_at > cut else None
    old_prefs = old.preferences if old.preferences and old.preferences.set_at <= cut else None
    base = Facts(new.sender_suspended, tuple(keep_new), tuple(new_optouts), new_prefs, cut)
    both = Facts(
        new.sender_suspended,
        (*keep_new, *old_consents),
        (*new_optouts, *old_optouts),
        new_prefs or old_prefs,
        cut,
    )
    kw = {"channel": channel, "category": category, "at": at, "policy": policy}
    expected = check(base, **kw)  # type: ignore[arg-type]
    got = check(both, **kw)  # type: ignore[arg-type]
    assert got == expected or (got.decision, got.reason) == ("deny", "reassigned")
    if got.allowed:
        assert got == expected


# Instants near DST changes and local midnights in the zones above, where off-by-one-day and
# off-by-an-hour errors live.
TRANSITIONS = [
    datetime(2030, 3, 10, 7, tzinfo=UTC),  # New York springs forward
    datetime(2030, 11, 3, 6, tzinfo=UTC),  # New York falls back
    datetime(2030, 3, 31, 1, tzinfo=UTC),  # London springs forward
    datetime(2030, 10, 27, 1, tzinfo=UTC),  # London falls back
    datetime(2030, 4, 6, 15, tzinfo=UTC),  # Lord Howe shifts by 30 minutes
    datetime(2030, 4, 7, 3, tzinfo=UTC),  # Santiago, at local midnight
    datetime(2030, 9, 8, 4, tzinfo=UTC),  # Santiago, at local midnight
    datetime(2030, 1, 15, 16, tzinfo=UTC),  # midnight in Shanghai
]
near_transitions = st.builds(
    lambda t, m: t + timedelta(minutes=m),
    st.sampled_from(TRANSITIONS),
    st.integers(-36 * 60, 36 * 60),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # spring forward over the opening
    policy=Policy("opt-out", (time(2, 30), time(21)), ZoneInfo("America/New_York")),
    quiet=None,
    at=datetime(2030, 3, 10, 6, tzinfo=UTC),
    seconds=0,
)
@example(  # the repeated hour
    policy=Policy("opt-out", (time(1, 30), time(21)), ZoneInfo("America/New_York")),
    quiet=None,
    at=datetime(2030, 11, 3, 6, 10, tzinfo=UTC),
    seconds=0,
)
@given(
    policy=policies,
    quiet=st.none() | window,
    at=near_transitions | instants,
    seconds=st.integers(0, 59),
)
def test_next_allowed_at_is_the_next_moment_the_window_opens(
    policy: Policy, quiet: tuple[time, time] | None, at: datetime, seconds: int
) -> None:
    at += timedelta(seconds=seconds)
    facts = Facts(preferences=Preferences(START, quiet_hours=quiet))
    policy = Policy("opt-out", policy.calling_hours, policy.zone)
    d = check(facts, at=at, policy=policy)
    if d.allowed:
        assert open_at(at, policy, quiet)
        return
    assert d.reason == "quiet_hours"
    assert not open_at(at, policy, quiet)
    # Brute force, minute by minute over the next two days, in UTC.
    first = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = [first + timedelta(minutes=i) for i in range(2 * 24 * 60 + 1)]
    opening = next((u for u in minutes if open_at(u, policy, quiet)), None)
    assert d.next_allowed_at == opening
    if opening is not None:
        assert opening.tzinfo == UTC
        assert opening > at
        assert check(facts, at=opening, policy=policy).allowed
