"""Refusals with an end the holder chose: the reminder a week before, and the end itself.

A holder may set a do-not-disturb, a category block or a sender block "for 3
months" or "for 1 year" (issue 19). Three parts keep that honest:

- the decision ignores a refusal from its end on (registry/decision.py), so
  the end takes effect on time even when this job runs late;
- ``run`` (``registry refusals run``, and every worker tick) takes ended
  refusals off the record with an event dated at the end itself, so the
  change feed shows the end like any change, at the time it took effect;
- ``run`` also texts the holder, through the registry's SMS backend, once
  per refusal a week (``REMIND_BEFORE``) before it ends; the site shows
  every end too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry import phones
from registry.config import Settings
from registry.consent import optouts
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.timeutil import utcnow

CHANNEL_WORDS = {"sms": ("marketing texts", "营销短信"), "voice": ("marketing calls", "营销电话")}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run did."""

    lifted: int
    reminded: int


def _words(key: str, language: str | None) -> str:
    en = language == "en"
    if key in CHANNEL_WORDS:
        return CHANNEL_WORDS[key][0 if en else 1]
    return f"{key} marketing" if en else f"{key} 类营销"


def run(session: Session, settings: Settings, now: datetime | None = None) -> Outcome:
    """Remind holders of refusals ending within a week, and lift the ended ones; commit is the caller's."""
    now = now or utcnow()
    soon = now + subscribers.REMIND_BEFORE
    reminded = 0
    holders = session.scalars(
        select(Subscriber).where(col(Subscriber.refusal_ends).is_not(None))
    ).all()
    for sub in holders:
        for key, end in subscribers.refusal_ends(sub).items():
            if now < end <= soon:
                what = _words(key, sub.language)
                kind = "dnd" if key in subscribers.CHANNELS else "category"
                reminded += subscribers.remind(
                    session, sub.phone, f"{kind}:{key}", what,
                    end.astimezone(phones.zone_of(sub.phone, settings.timezone)), sub.language,
                )  # fmt: skip
    for optout, name in optouts.timed_optouts(session, soon):
        ends = optout.expires_at
        if ends is None or ends <= now:
            continue
        holder = session.get(Subscriber, optout.phone)
        language = holder.language if holder else None
        what = f"block of {name}" if language == "en" else f"拒绝 {name}"
        reminded += subscribers.remind(
            session, optout.phone, f"optout:{optout.id}", what,
            ends.astimezone(phones.zone_of(optout.phone, settings.timezone)), language,
        )  # fmt: skip
    lifted = subscribers.lift_ended(session, now) + len(optouts.end_timed_optouts(session, now))
    return Outcome(lifted, reminded)
