"""Subscribers' preferences: do-not-disturb, category blocks, quiet hours."""

from __future__ import annotations

from datetime import time

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.config import ConfigError, parse_window
from registry.errors import ValidationFailed
from registry.events import services as events
from registry.events.services import Actor
from registry.senders.models import CATEGORIES
from registry.subscribers.models import Subscriber
from registry.timeutil import utcnow

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
) -> Subscriber:
    """Change the holder's preferences; effective for every check from the commit on."""
    sub = get_or_create(session, phone)
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
    sub.updated_at = utcnow()
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


def preferences_of(sub: Subscriber) -> dict[str, object]:
    """Return the holder's preferences as plain data."""
    return {
        "dnd_voice": sub.dnd_voice,
        "dnd_sms": sub.dnd_sms,
        "blocked_categories": [c for c in sub.blocked_categories.split(",") if c],
        "quiet_hours": sub.quiet_hours,
    }
