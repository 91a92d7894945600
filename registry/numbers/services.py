"""Number lifecycle: disconnections void what the old holder said; reassignment lookups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import phones
from registry.config import Settings
from registry.consent import services as consents
from registry.errors import InvalidPhoneError, RegistryError, ValidationFailed
from registry.events import services as events
from registry.events.services import Actor
from registry.numbers.models import Disconnection
from registry.subscribers.models import Subscriber
from registry.timeutil import to_utc, utcnow, within_calendar


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the registry could not take, with its position in the input."""

    index: int
    error: RegistryError


def parse_time(value: str | datetime, settings: Settings) -> datetime:
    """Parse an ISO 8601 time (or date); a time without offset is in REGISTRY_TIMEZONE."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed(
                f"not an ISO 8601 time: {value!r}", field="disconnected_at"
            ) from exc
    try:
        return to_utc(within_calendar(parsed), settings.tz)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="disconnected_at") from exc


def disconnect(
    session: Session, settings: Settings, actor: Actor, phone: str, at: datetime
) -> bool:
    """Record that ``phone`` was disconnected at ``at``; return False if already known.

    Everything recorded for the number before ``at`` stops speaking for it:
    consents are voided (with events), the holder's preferences and sessions
    are reset; opt-outs need no change because the decision ignores records
    from before the latest disconnection (SPEC §3 step 3).
    """
    if at > utcnow() + timedelta(minutes=5):
        raise ValidationFailed("disconnected_at is in the future", field="disconnected_at")
    try:
        with session.begin_nested():
            session.add(
                Disconnection(phone=phone, disconnected_at=at, organization_id=actor.org_id)
            )
            session.flush()
    except IntegrityError:
        return False  # the same report twice is harmless
    consents.void_before(session, phone, at, actor)
    # Locked, as every change to the holder's record (subscribers.get_or_create):
    # a preference change at the same moment must not interleave with the reset.
    sub = session.get(Subscriber, phone, with_for_update=True, populate_existing=True)
    if sub is not None and sub.updated_at <= at:
        # The next holder starts with a clean account: defaults, and every old
        # session invalidated.
        sub.dnd_voice = sub.dnd_sms = False
        sub.blocked_categories = ""
        sub.quiet_hours = None
        sub.language = None
        sub.session_epoch += 1
        sub.updated_at = utcnow()
        # Say so in the log, so a platform following the number's preferences
        # through the feed ends with the same (cleared) settings.
        events.record(
            session,
            actor,
            phone,
            "preferences.changed",
            state="reset",
            data={
                "dnd_voice": False,
                "dnd_sms": False,
                "blocked_categories": [],
                "quiet_hours": None,
            },
            at=sub.updated_at,
        )
    events.record(
        session,
        actor,
        phone,
        "number.disconnected",
        state="disconnected",
        data={"disconnected_at": at},
    )
    return True


def disconnect_many(
    session: Session, settings: Settings, actor: Actor, rows: list[tuple[object, object]]
) -> tuple[int, list[Rejected]]:
    """Record many disconnections; a bad row is rejected by index and never stops the rest."""
    accepted = 0
    rejected: list[Rejected] = []
    for index, (raw_phone, raw_at) in enumerate(rows):
        try:
            if not isinstance(raw_phone, str):
                raise InvalidPhoneError("phone must be a string", field="phone")
            try:
                phone = phones.to_e164(raw_phone, settings.default_region)
            except phones.InvalidPhone as exc:
                raise InvalidPhoneError(str(exc), field="phone") from exc
            if not isinstance(raw_at, str | datetime):
                raise ValidationFailed(
                    "disconnected_at must be an ISO 8601 time", field="disconnected_at"
                )
            disconnect(session, settings, actor, phone, parse_time(raw_at, settings))
            accepted += 1
        except RegistryError as exc:
            rejected.append(Rejected(index, exc))
    return accepted, rejected


def reassigned(session: Session, settings: Settings, phone: str, since: date) -> bool | None:
    """True if a disconnection on or after ``since`` is known; None if the data cannot say."""
    start = datetime.combine(since, time(0), tzinfo=settings.tz)
    found = session.scalar(
        select(func.count())
        .select_from(Disconnection)
        .where(Disconnection.phone == phone, Disconnection.disconnected_at >= start)  # type: ignore[arg-type]
    )
    if found:
        return True
    if settings.disconnect_data_since is None or since < settings.disconnect_data_since:
        return None
    return False
