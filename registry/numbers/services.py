"""Number lifecycle: disconnections void what the old holder said; reassignment lookups."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from registry import phones
from registry.config import Settings
from registry.consent import services as consents
from registry.errors import (
    Conflict,
    Forbidden,
    InvalidPhoneError,
    NotFound,
    RegistryError,
    ValidationFailed,
)
from registry.events import services as events
from registry.events.models import Event
from registry.events.services import Actor
from registry.numbers import ranges
from registry.numbers.models import Disconnection
from registry.subscribers.models import Subscriber
from registry.timeutil import iso, to_utc, utcnow, within_calendar

# No registry holds disconnections from before this; an earlier time is a typo.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the registry could not take, with its position in the input."""

    index: int
    error: RegistryError


def parse_time(
    value: str | datetime, settings: Settings, field: str = "disconnected_at"
) -> datetime:
    """Parse an ISO 8601 time (or date); a time without offset is in REGISTRY_TIMEZONE.

    A time the calendar cannot hold once moved to UTC (``0001-01-01T00:00``
    east of Greenwich) is a ValidationFailed like any other bad time.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed(f"not an ISO 8601 time: {value!r}", field=field) from exc
    try:
        return to_utc(within_calendar(parsed), settings.tz)
    except (OverflowError, ValueError) as exc:
        raise ValidationFailed(f"{field} is out of range: {exc}", field=field) from exc


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
    if at < EARLIEST:
        raise ValidationFailed(
            f"disconnected_at is before {EARLIEST.year}: out of range", field="disconnected_at"
        )
    # Only the carrier holding the number's range speaks for it (SPEC §8).
    holder = ranges.holder_of(session, phone)
    if holder is None or actor.org_id is None or holder.organization_id != actor.org_id:
        raise ranges.NotYourNumber(
            f"{phone} is not in a number range your organization holds", field="phone"
        )
    row = Disconnection(phone=phone, disconnected_at=at, organization_id=actor.org_id)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False  # the same report twice is harmless
    consents.void_before(session, phone, at, actor, disconnection_id=row.id)
    detail: dict[str, object] = {"disconnected_at": at, "disconnection": row.id}
    # Locked, as every change to the holder's record (subscribers.get_or_create):
    # a preference change at the same moment must not interleave with the reset.
    sub = session.get(Subscriber, phone, with_for_update=True, populate_existing=True)
    if sub is not None and sub.updated_at <= at:
        # What the reset replaces, for a retraction to put back (``retract``).
        detail["reset"] = _settings_of(sub)
        # The next holder starts with a clean account: defaults, and every old
        # session invalidated.
        sub.dnd_voice = sub.dnd_sms = False
        sub.blocked_categories = ""
        sub.quiet_hours = None
        sub.frequency_caps = sub.refusal_ends = None
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
        detail["reset_at"] = sub.updated_at
    events.record(session, actor, phone, "number.disconnected", state="disconnected", data=detail)
    return True


def _settings_of(sub: Subscriber) -> dict[str, object]:
    return {
        "dnd_voice": sub.dnd_voice,
        "dnd_sms": sub.dnd_sms,
        "blocked_categories": sub.blocked_categories,
        "quiet_hours": sub.quiet_hours,
        "frequency_caps": sub.frequency_caps,
        "refusal_ends": sub.refusal_ends,
        "language": sub.language,
        "updated_at": sub.updated_at,
    }


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
        .where(
            col(Disconnection.phone) == phone,
            col(Disconnection.disconnected_at) >= start,
            col(Disconnection.retracted_at).is_(None),
        )
    )
    if found:
        return True
    if settings.disconnect_data_since is None or since < settings.disconnect_data_since:
        return None
    return False


def find_disconnection(session: Session, phone: str, at: datetime) -> Disconnection:
    """Return the standing (not retracted) disconnection of ``phone`` at ``at``, or NotFound."""
    row = session.scalar(
        select(Disconnection).where(
            col(Disconnection.phone) == phone,
            col(Disconnection.disconnected_at) == at,
            col(Disconnection.retracted_at).is_(None),
        )
    )
    if row is None:
        raise NotFound(f"no standing disconnection of {phone} at {iso(at)}")
    return row


def get_disconnection(session: Session, disconnection_id: int) -> Disconnection:
    """Return a disconnection by id, or NotFound."""
    row = session.get(Disconnection, disconnection_id)
    if row is None:
        raise NotFound(f"no disconnection {disconnection_id}")
    return row


def for_phone(session: Session, phone: str) -> list[Disconnection]:
    """Return every disconnection reported for ``phone``, retracted ones too, newest first."""
    return list(
        session.scalars(
            select(Disconnection)
            .where(col(Disconnection.phone) == phone)
            .order_by(col(Disconnection.disconnected_at).desc())
        )
    )


@dataclass(frozen=True, slots=True)
class Retraction:
    """What retracting a disconnection gave back."""

    disconnection: Disconnection
    consents: int  # consents restored to the status the disconnection ended
    preferences: bool  # the holder's settings restored (False: none reset, or changed since)


def retract(
    session: Session,
    actor: Actor,
    disconnection: Disconnection,
    reason: str,
    *,
    carrier_id: int | None,
    by: str,
) -> Retraction:
    """Retract a wrong disconnection and restore what it voided.

    ``carrier_id`` is the carrier asking (None: the regulator, who may retract
    any). Only the carrier that reported a disconnection may retract it. The
    disconnection stays as history, marked retracted, and stops counting at
    once (checks, ``/reassigned``); the consents it voided return to their
    previous status, and the holder's settings it reset come back unless the
    holder changed them since (then the holder's newer choice stands). Sessions
    it signed out stay signed out. The feed carries the retraction as a
    ``number.disconnection_retracted`` change, and each restored consent as a
    ``consent.restored`` change for its sender.
    """
    if carrier_id is not None and disconnection.organization_id != carrier_id:
        raise Forbidden("only the carrier that reported a disconnection may retract it")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValidationFailed("give a reason of 1 to 500 characters", field="reason")
    row = session.get(Disconnection, disconnection.id, with_for_update=True, populate_existing=True)
    if row is None or row.retracted_at is not None:
        raise Conflict("the disconnection is already retracted")
    now = utcnow()
    row.retracted_at, row.retracted_by, row.retraction_reason = now, by, reason
    session.flush()
    phone = row.phone
    # Another standing disconnection of the number still cuts what came before it.
    still = session.scalar(
        select(func.max(col(Disconnection.disconnected_at))).where(
            col(Disconnection.phone) == phone, col(Disconnection.retracted_at).is_(None)
        )
    )
    restored = consents.restore_voided(session, phone, row.id or 0, actor, still_cut_at=still)
    preferences = _restore_settings(session, actor, row)
    events.record(
        session,
        actor,
        phone,
        "number.disconnection_retracted",
        organization_id=row.organization_id,  # whose report it was, even when the regulator acts
        state="retracted",
        data={
            "disconnected_at": row.disconnected_at,
            "disconnection": row.id,
            "by": "carrier" if carrier_id is not None else "regulator",
            "reason": reason,
        },
        at=now,
    )
    return Retraction(row, restored, preferences)


def _restore_settings(session: Session, actor: Actor, row: Disconnection) -> bool:
    """Put back the holder's settings the disconnection reset, if nobody changed them since."""
    found = session.execute(
        select(col(Event.data)).where(
            col(Event.phone) == row.phone, col(Event.type) == "number.disconnected"
        )
    ).all()
    detail = next(
        (d for (text,) in found if text and (d := json.loads(text)).get("disconnection") == row.id),
        None,
    )
    if detail is None or "reset" not in detail:
        return False
    sub = session.get(Subscriber, row.phone, with_for_update=True, populate_existing=True)
    if sub is None or iso(sub.updated_at) != iso(_stored_time(detail.get("reset_at"))):
        return False  # the holder set something since: their newer choice stands
    before = detail["reset"]
    sub.dnd_voice, sub.dnd_sms = bool(before["dnd_voice"]), bool(before["dnd_sms"])
    sub.blocked_categories = before["blocked_categories"] or ""
    sub.quiet_hours, sub.language = before["quiet_hours"], before["language"]
    # Saved by a reset since issue 19; absent from older ones.
    sub.frequency_caps = before.get("frequency_caps")
    sub.refusal_ends = before.get("refusal_ends")
    # Set when the old holder set them: they count (or not) against other
    # disconnections exactly as before this one.
    sub.updated_at = _stored_time(before["updated_at"]) or utcnow()
    events.record(
        session,
        actor,
        row.phone,
        "preferences.changed",
        state="restored",
        data={
            "dnd_voice": sub.dnd_voice,
            "dnd_sms": sub.dnd_sms,
            "blocked_categories": [c for c in sub.blocked_categories.split(",") if c],
            "quiet_hours": sub.quiet_hours,
        },
    )
    return True


def _stored_time(value: object) -> datetime | None:
    """Read back a time an event's JSON keeps as ``str(datetime)``."""
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value)
