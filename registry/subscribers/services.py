"""Subscribers' preferences: do-not-disturb, category blocks, quiet hours, frequency caps.

Refusals may have an end the holder chose ("for 3 months", "for 1 year",
else until lifted, issue 19): the decision ignores a refusal from its end on
(registry/decision.py), and ``lift_ended`` (a scheduled job: ``registry
refusals run`` and the worker) takes it off the record with an event dated
at that end, so the change feed shows the end like any change.
``remind_ending`` texts the holder a week before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.config import ConfigError, parse_window
from registry.errors import NotFound, ValidationFailed
from registry.events import services as events
from registry.events.services import SYSTEM, Actor
from registry.senders.models import CATEGORIES, Sender
from registry.sms import services as sms
from registry.subscribers.models import (
    CapExemption,
    RefusalNotice,
    Subscriber,
    parse_caps,
    parse_ends,
)
from registry.timeutil import iso, utcnow

CHANNELS = ("sms", "voice")
# How long a refusal lasts, as the holder chooses it; "forever" is until lifted.
DURATIONS: dict[str, relativedelta | None] = {
    "3m": relativedelta(months=3),
    "1y": relativedelta(years=1),
    "forever": None,
}
KEEP = "keep"  # the end a refusal already has stays
MAX_CAP = 99  # contacts a day or a week; 0 would be do-not-disturb, which has its own switch
REMIND_BEFORE = timedelta(days=7)

SUBSCRIBER = Actor("subscriber", "site")


def get_or_create(session: Session, phone: str) -> Subscriber:
    """Return the holder's record, creating an empty one, locked until the caller commits.

    Locked: two changes at once (the site and an SMS STOPALL) would otherwise
    both read the old settings, and the event of one would not describe the
    row the other leaves (the feed and the log must end where the table does).
    Created with ON CONFLICT DO NOTHING: two first changes at once both succeed.
    ``populate_existing``: a caller may have read the record earlier in the same
    session (an SMS reply reads the holder's language first); the locked read
    replaces those values, so a change is never described from stale ones
    (tests/unit/test_preferences_race.py).
    """
    sub = session.get(Subscriber, phone, with_for_update=True, populate_existing=True)
    if sub is None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        now = utcnow()
        session.execute(
            insert(Subscriber.__table__)  # type: ignore[attr-defined]
            .values(phone=phone, created_at=now, updated_at=now)
            .on_conflict_do_nothing()
        )
        sub = session.get(Subscriber, phone, with_for_update=True, populate_existing=True)
        if sub is None:  # the row was just inserted (or by a concurrent request)
            raise RuntimeError(f"subscriber {phone} vanished right after its insert")
    return sub


def parse_quiet_hours(text: str | None) -> tuple[time, time] | None:
    """Validate ``HH:MM-HH:MM`` (may wrap midnight); empty means none."""
    if not text:
        return None
    try:
        return parse_window(text)
    except ConfigError as exc:
        raise ValidationFailed(
            "quiet hours must look like 22:00-08:00", field="quiet_hours"
        ) from exc


def set_preferences(
    session: Session,
    phone: str,
    actor: Actor = SUBSCRIBER,
    *,
    dnd_voice: bool | None = None,
    dnd_sms: bool | None = None,
    blocked_categories: list[str] | None = None,
    quiet_hours: str | bool | None = False,
    durations: Mapping[str, str] | None = None,
) -> Subscriber:
    """Change the holder's preferences; effective for every check from the commit on.

    ``durations`` says how long the DND of each channel (key ``sms``,
    ``voice``) and the category blocks (key ``categories``) last: a key of
    ``DURATIONS``, or ``keep`` (the end they have; the default).
    """
    sub = get_or_create(session, phone)
    now = utcnow()
    if dnd_voice is not None:
        sub.dnd_voice = dnd_voice
    if dnd_sms is not None:
        sub.dnd_sms = dnd_sms
    if blocked_categories is not None:
        unknown = set(blocked_categories) - set(CATEGORIES)
        if unknown:
            raise ValidationFailed(
                f"unknown categories: {', '.join(sorted(unknown))}", field="categories"
            )
        sub.blocked_categories = ",".join(c for c in CATEGORIES if c in blocked_categories)
    if quiet_hours is not False:
        window = parse_quiet_hours(quiet_hours or None)  # type: ignore[arg-type]
        sub.quiet_hours = f"{window[0]:%H:%M}-{window[1]:%H:%M}" if window else None
    sub.refusal_ends = _ends_after(sub, dict(durations or {}), now)
    sub.updated_at = now
    return _changed(session, actor, phone, sub)


def preferences_of(sub: Subscriber) -> dict[str, object]:
    """Return the holder's preferences as plain data."""
    out: dict[str, object] = {
        "dnd_voice": sub.dnd_voice,
        "dnd_sms": sub.dnd_sms,
        "blocked_categories": [c for c in sub.blocked_categories.split(",") if c],
        "quiet_hours": sub.quiet_hours,
    }
    if sub.refusal_ends:
        out["refusal_ends"] = {key: iso(end) for key, end in parse_ends(sub.refusal_ends)}
    if sub.frequency_caps:
        out["frequency_caps"] = {
            channel: {"per_day": day, "per_week": week}
            for channel, day, week in parse_caps(sub.frequency_caps)
        }
    return out


def _changed(session: Session, actor: Actor, phone: str, sub: Subscriber) -> Subscriber:
    """Flush the holder's new preferences and record them (``preferences.changed``, set)."""
    session.flush()
    events.record(
        session,
        actor,
        phone,
        "preferences.changed",
        state="set",
        data=preferences_of(sub),
        at=sub.updated_at,
    )
    return sub


def _refused(sub: Subscriber) -> list[str]:
    """Return the refusals in force on the record: channels with DND, then blocked categories."""
    channels = [c for c, on in (("sms", sub.dnd_sms), ("voice", sub.dnd_voice)) if on]
    return channels + [c for c in sub.blocked_categories.split(",") if c]


def _ends_text(ends: Mapping[str, datetime]) -> str | None:
    return ",".join(f"{key}={iso(end)}" for key, end in sorted(ends.items())) or None


def refusal_end(duration: str, now: datetime) -> datetime | None:
    """Return when a refusal chosen now for ``duration`` ends (None: until lifted)."""
    if duration not in DURATIONS:
        raise ValidationFailed(f"unknown duration {duration!r}", field="duration")
    delta = DURATIONS[duration]
    return None if delta is None else now + delta


def _ends_after(sub: Subscriber, durations: dict[str, str], now: datetime) -> str | None:
    """Return the ends of the refusals now on the record, as ``durations`` sets them."""
    old = dict(parse_ends(sub.refusal_ends))
    ends: dict[str, datetime] = {}
    for key in _refused(sub):
        group = key if key in CHANNELS else "categories"
        choice = durations.get(group, KEEP)
        if choice == KEEP:
            if key in old:
                ends[key] = old[key]
            continue
        end = refusal_end(choice, now)
        if end is not None:
            ends[key] = end
    return _ends_text(ends)


def refusal_ends(sub: Subscriber) -> dict[str, datetime]:
    """Return when each refusal set for a time ends (channel or category → end)."""
    return dict(parse_ends(sub.refusal_ends))


def set_frequency_caps(
    session: Session,
    phone: str,
    caps: Mapping[str, tuple[int | None, int | None]],
    actor: Actor = SUBSCRIBER,
) -> Subscriber:
    """Set the cap on marketing contacts per channel: (per local day, per local week), None for none."""
    parts = []
    for channel in CHANNELS:
        day, week = caps.get(channel, (None, None))
        for value, name in ((day, "per_day"), (week, "per_week")):
            if value is not None and not 1 <= value <= MAX_CAP:
                raise ValidationFailed(
                    f"a cap is a whole number from 1 to {MAX_CAP}", field=f"{channel}_{name}"
                )
        if day is not None or week is not None:
            parts.append(f"{channel}={day or ''}/{week or ''}")
    sub = get_or_create(session, phone)
    sub.frequency_caps = ",".join(parts) or None
    sub.updated_at = utcnow()
    return _changed(session, actor, phone, sub)


def cap_exemptions(session: Session, phone: str) -> set[int]:
    """Return the senders this holder lets always reach them (not limited by the cap)."""
    rows = session.scalars(
        select(col(CapExemption.sender_id)).where(col(CapExemption.phone) == phone)
    )
    return set(rows)


def set_cap_exemption(
    session: Session, phone: str, sender_id: int, exempt: bool, actor: Actor = SUBSCRIBER
) -> None:
    """Let a sender always reach the holder despite the cap, or no longer."""
    sender = session.get(Sender, sender_id)
    if sender is None:
        raise NotFound("no such sender")
    get_or_create(session, phone)  # the holder's row, locked: one change at a time
    now = utcnow()
    table = CapExemption.__table__  # type: ignore[attr-defined]
    if exempt:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(
            insert(table)
            .values(phone=phone, sender_id=sender_id, created_at=now)
            .on_conflict_do_nothing()
        )
    else:
        session.execute(delete(table).where(table.c.phone == phone, table.c.sender_id == sender_id))
    events.record(
        session,
        actor,
        phone,
        "cap.exempted" if exempt else "cap.exemption_lifted",
        sender_id=sender_id,
        organization_id=sender.organization_id,
        state="exempt" if exempt else "capped",
        at=now,
    )


def lift_ended(session: Session, now: datetime | None = None) -> int:
    """Take every DND and category block whose end has come off the record; return how many.

    Each ends with its own ``preferences.changed`` event (state ``expired``),
    dated at the end itself: the decision already ignored it from then on.
    """
    now = now or utcnow()
    lifted = 0
    phones = session.scalars(
        select(col(Subscriber.phone)).where(col(Subscriber.refusal_ends).is_not(None))
    ).all()
    for phone in phones:
        sub = get_or_create(session, phone)
        ends = refusal_ends(sub)
        for key, end in sorted(ends.items(), key=lambda item: item[1]):
            if end > now:
                continue
            if key == "sms":
                sub.dnd_sms = False
            elif key == "voice":
                sub.dnd_voice = False
            else:
                sub.blocked_categories = ",".join(
                    c for c in sub.blocked_categories.split(",") if c and c != key
                )
            del ends[key]
            sub.refusal_ends = _ends_text(ends)
            sub.updated_at = max(sub.updated_at, end)
            data = preferences_of(sub) | {"ended": key}
            events.record(
                session, SYSTEM, phone, "preferences.changed", state="expired", data=data, at=end
            )
            lifted += 1
        session.flush()
    return lifted


def _notice_text(what: str, end: datetime, language: str | None) -> str:
    day = f"{end:%Y-%m-%d %H:%M}"
    if language == "en":
        return (
            f"[Anning] Your refusal ({what}) ends on {day}, your local time. "
            "To keep it, sign in to the registry's site and choose how long it lasts."
        )
    return f"【Anning】您设置的拒绝（{what}）将于当地时间 {day} 到期。如需继续，请登录安宁登记处网站重新设置期限。"


def remind(
    session: Session, phone: str, refusal: str, what: str, end: datetime, language: str | None
) -> bool:
    """Text the holder that a refusal ends soon (``end`` in local time), once per refusal and end.

    Tell whether the text was sent now.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = RefusalNotice.__table__  # type: ignore[attr-defined]
    done = session.execute(
        insert(table)
        .values(phone=phone, refusal=refusal, ends_at=end.astimezone(UTC), sent_at=utcnow())
        .on_conflict_do_nothing()
        .returning(table.c.phone)
    ).first()
    if done is None:
        return False
    sms.send(session, phone, _notice_text(what, end, language), "refusal_ending")
    return True
