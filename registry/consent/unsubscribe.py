"""One-tap unsubscribe (一键退订): stop every sender that was allowed to contact this number.

The list is every sender the registry answered ``allow`` for marketing about
this number in the last 90 days (the check log: who asked, and what it was
told), whether it still may or not. Unsubscribing one, or all at once,
records an opt-out from the holder on both channels with this site as its
source: effective from the commit on, so the sender's next check says
``opted_out`` (it wins over any consent the sender holds, SPEC §3 step 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.checks.models import CheckLog
from registry.consent import optouts
from registry.consent.models import CHANNELS, OptOut
from registry.database.statements import table_of
from registry.errors import NotFound
from registry.events.services import Actor
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.senders.services import sender_as_owner
from registry.timeutil import utcnow

WINDOW = timedelta(days=90)
SOURCE = "site"
EVIDENCE = "one-tap unsubscribe (一键退订) on the registry's site"

log, sender, org, optout = (
    table_of(CheckLog), table_of(Sender), table_of(Organization), table_of(OptOut)
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AllowedSender:
    """A sender allowed to contact this number lately, and whether the holder stopped it since."""

    sender_id: int
    code: str
    name: str
    organization: str
    last_allowed_at: datetime
    stopped: bool


def allowed_senders(
    session: Session, phone: str, now: datetime | None = None
) -> list[AllowedSender]:
    """Return every sender answered allow for marketing about ``phone`` in the last 90 days, newest first."""
    now = now or utcnow()
    last = func.max(log.c.checked_at).label("last")
    found = session.execute(
        select(log.c.sender_id, last)
        .where(
            log.c.phone == phone,
            log.c.checked_at >= now - WINDOW,
            log.c.decision == "allow",
            log.c.purpose == "marketing",
        )
        .group_by(log.c.sender_id)
    ).all()
    rows: list[tuple[int, datetime]] = [(int(r[0]), r[1]) for r in found]
    if not rows:
        return []
    ids = [r[0] for r in rows]
    names = {
        r[0]: (r[1], r[2], r[3])
        for r in session.execute(
            select(sender.c.id, sender.c.code, sender.c.name, org.c.name)
            .join(org, org.c.id == sender.c.organization_id)
            .where(sender.c.id.in_(ids))
        )
    }
    # Stopped: opt-outs in force on both channels.
    stopped: dict[int, set[str]] = {}
    for row in session.execute(
        select(optout.c.sender_id, optout.c.channels).where(
            optout.c.phone == phone,
            optout.c.sender_id.in_(ids),
            optout.c.withdrawn_at.is_(None),
        )
    ):
        stopped.setdefault(int(row[0]), set()).update(str(row[1]).split(","))
    out = [
        AllowedSender(
            sender_id, *names[sender_id], last_at, set(CHANNELS) <= stopped.get(sender_id, set())
        )
        for sender_id, last_at in rows
    ]
    return sorted(out, key=lambda s: (s.last_allowed_at, s.sender_id), reverse=True)


def unsubscribe(
    session: Session, actor: Actor, phone: str, sender_id: int | None = None
) -> list[AllowedSender]:
    """Record the holder's opt-out of one listed sender (``sender_id``) or of all; return those stopped now.

    Only a sender on this number's list can be named: an id from elsewhere is
    not found. A sender already stopped is left as it is.
    """
    now = utcnow()
    listed = allowed_senders(session, phone, now)
    chosen = [s for s in listed if sender_id is None or s.sender_id == sender_id]
    if sender_id is not None and not chosen:
        raise NotFound("that sender is not on your list")
    done = []
    for item in chosen:
        if item.stopped:
            continue
        ref = sender_as_owner(session, item.code, now)
        optouts.record_optout(session, actor, ref, phone, list(CHANNELS), SOURCE, now, EVIDENCE)
        done.append(item)
    return done
