"""Suspend and lift senders and organizations; the N-complaints-in-D-days trigger.

A suspension writes ``suspended_until`` and ``suspension_reason`` on the sender
or organization (what every check reads: SPEC §3 step 1, for every sender of
a suspended organization) and a row in the sanction register (the history and
the public page). Commit is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.errors import Conflict, NotFound, ValidationFailed
from registry.events import services as events
from registry.orgs.models import Organization
from registry.sanctions.models import Sanction
from registry.senders.models import Sender

MAX_DAYS = 3650
MAX_REASON = 500


def _check(reason: str, days: int) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("a sanction needs a reason", field="reason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(f"the reason is longer than {MAX_REASON} characters", field="reason")
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"the duration must be 1 to {MAX_DAYS} days", field="days")
    return reason


def suspend_sender(
    session: Session,
    sender: Sender,
    reason: str,
    days: int,
    by: str,
    now: datetime,
    *,
    automatic: bool = False,
) -> Sanction:
    """Suspend one sender for ``days``: its checks answer ``sender_suspended`` at once."""
    reason = _check(reason, days)
    until = now + timedelta(days=days)
    sender.suspended_until = until
    sender.suspension_reason = reason
    row = Sanction(
        kind="suspension",
        organization_id=sender.organization_id,
        sender_id=sender.id,
        reason=reason,
        starts_at=now,
        ends_at=until,
        automatic=automatic,
        created_by=by,
    )
    session.add(row)
    session.flush()
    announce(session, row)
    return row


def suspend_org(
    session: Session, org: Organization, reason: str, days: int, by: str, now: datetime
) -> Sanction:
    """Suspend a whole organization: every one of its senders answers ``sender_suspended``."""
    reason = _check(reason, days)
    until = now + timedelta(days=days)
    org.suspended_until = until
    org.suspension_reason = reason
    row = Sanction(
        kind="suspension",
        organization_id=org.id,  # type: ignore[arg-type]
        reason=reason,
        starts_at=now,
        ends_at=until,
        created_by=by,
    )
    session.add(row)
    session.flush()
    announce(session, row)
    return row


def _open_suspensions(
    session: Session, org_id: int, sender_id: int | None, now: datetime
) -> list[Sanction]:
    target = (
        col(Sanction.sender_id) == sender_id if sender_id else col(Sanction.sender_id).is_(None)
    )
    return list(
        session.scalars(
            select(Sanction).where(
                col(Sanction.kind) == "suspension",
                col(Sanction.organization_id) == org_id,
                target,
                col(Sanction.address).is_(None),  # an address's suspension is lifted on its own
                col(Sanction.lifted_at).is_(None),
                or_(col(Sanction.ends_at).is_(None), col(Sanction.ends_at) > now),
            )
        )
    )


def lift_sender(session: Session, sender: Sender, now: datetime) -> list[Sanction]:
    """End a sender's suspension now; return the register rows that were lifted."""
    if sender.suspended_until is None or sender.suspended_until <= now:
        raise Conflict(f"sender {sender.code!r} is not suspended")
    sender.suspended_until = None
    sender.suspension_reason = None
    rows = _open_suspensions(session, sender.organization_id, sender.id, now)
    for row in rows:
        row.lifted_at = now
    session.flush()
    for row in rows:
        announce(session, row, LIFTED)
    return rows


def lift_org(session: Session, org: Organization, now: datetime) -> list[Sanction]:
    """End an organization's suspension now (its senders' own suspensions stay)."""
    if org.suspended_until is None or org.suspended_until <= now:
        raise Conflict(f"organization {org.slug!r} is not suspended")
    org.suspended_until = None
    org.suspension_reason = None
    rows = _open_suspensions(session, org.id or 0, None, now)
    for row in rows:
        row.lifted_at = now
    session.flush()
    for row in rows:
        announce(session, row, LIFTED)
    return rows


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One line of the public sanction register."""

    organization: str
    organization_slug: str
    sender: str | None
    reason: str
    starts_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None
    active: bool
    kind: str = "suspension"
    credit_code: str | None = None
    region: str | None = None
    address: str | None = None
    amount: int | None = None
    deadline: datetime | None = None
    done_at: datetime | None = None
    id: int = 0


# What the public register shows: every measure but the trigger's internal flags.
PUBLIC_KINDS = ("suspension", "notice", "interview", "rectification", "fine", "listing")


def _active(kind: str, ends: datetime | None, lifted: datetime | None,
            done: datetime | None, now: datetime) -> bool:  # fmt: skip
    if lifted is not None or done is not None:
        return False
    if kind in ("suspension", "listing"):
        return ends is None or ends > now
    # A notice or an interview is a fact, not a state.
    return kind in ("rectification", "fine")


def public_register(
    session: Session, now: datetime, limit: int = 500, kinds: tuple[str, ...] = ("suspension",)
) -> list[RegisterEntry]:
    """Return measures of ``kinds``, newest first: current ones and those of the past year."""
    rows = session.execute(
        select(
            col(Organization.name),
            col(Organization.slug),
            col(Sender.name),
            col(Sanction.reason),
            col(Sanction.starts_at),
            col(Sanction.ends_at),
            col(Sanction.lifted_at),
            col(Sanction.kind),
            col(Organization.credit_code),
            col(Organization.region),
            col(Sanction.address),
            col(Sanction.amount),
            col(Sanction.deadline),
            col(Sanction.done_at),
            col(Sanction.id),
        )
        .join(Organization, col(Organization.id) == Sanction.organization_id)
        .outerjoin(Sender, col(Sender.id) == Sanction.sender_id)
        .where(
            col(Sanction.kind).in_(kinds),
            or_(
                col(Sanction.starts_at) >= now - timedelta(days=365),
                and_(col(Sanction.lifted_at).is_(None), col(Sanction.ends_at) > now),
            ),
        )
        .order_by(col(Sanction.starts_at).desc(), col(Sanction.id).desc())
        .limit(limit)
    )
    entries = []
    for row in rows:
        name, slug, sender, reason, starts, ends, lifted, kind = tuple(row)[:8]
        code, region, address, amount, deadline, done, sid = tuple(row)[8:]
        active = _active(kind, ends, lifted, done, now)
        entry = RegisterEntry(name, slug, sender, reason, starts, ends, lifted, active,
                              kind, code, region, address, amount, deadline, done, sid)  # fmt: skip
        entries.append(entry)
    return entries


def credit_list(session: Session, now: datetime) -> list[Organization]:
    """Return the organizations on the credit list now, by slug."""
    return list(
        session.scalars(
            select(Organization)
            .where(col(Organization.listed_until) > now)
            .order_by(col(Organization.slug))
        )
    )


def history(session: Session, org_id: int) -> list[Sanction]:
    """Return an organization's sanction register rows (its own and its senders'), newest first."""
    return list(
        session.scalars(
            select(Sanction)
            .where(col(Sanction.organization_id) == org_id)
            .order_by(col(Sanction.id).desc())
        )
    )


def flags(session: Session, now: datetime, days: int = 90) -> list[tuple[Sanction, str, str]]:
    """Return the trigger's recent flags and automatic suspensions with org and sender names."""
    rows = session.execute(
        select(Sanction, col(Organization.slug), col(Sender.code))
        .join(Organization, col(Organization.id) == Sanction.organization_id)
        .join(Sender, col(Sender.id) == Sanction.sender_id)
        .where(
            col(Sanction.automatic).is_(True),
            col(Sanction.created_at) >= now - timedelta(days=days),
        )
        .order_by(col(Sanction.id).desc())
    )
    return [(s, slug, code) for s, slug, code in rows]


@dataclass(frozen=True, slots=True)
class TriggerHit:
    """A sender that reached the threshold, and what the scan did about it."""

    sender_id: int
    sender_code: str
    complaints: int
    action: str  # "flagged", "suspended", or "already" (flagged or suspended in the window)


def scan(
    session: Session,
    counts: Iterable[tuple[int, int]],
    *,
    threshold: int,
    days: int,
    auto_suspend: bool,
    suspend_days: int,
    now: datetime,
) -> list[TriggerHit]:
    """Flag (or suspend) every sender with ``threshold`` verified complaints in ``days`` days.

    ``counts`` is (sender id, verified complaints in the window) — computed by
    the complaints desk, so that this stays about sanctions. A sender already
    flagged or suspended by the trigger inside the window is not flagged again.
    """
    hits: list[TriggerHit] = []
    since = now - timedelta(days=days)
    for sender_id, count in counts:
        if count < threshold:
            continue
        sender = session.get(Sender, sender_id)
        if sender is None:
            continue
        recent = session.scalar(
            select(col(Sanction.id)).where(
                col(Sanction.sender_id) == sender_id,
                col(Sanction.automatic).is_(True),
                col(Sanction.created_at) >= since,
            )
        )
        if recent is not None:
            hits.append(TriggerHit(sender_id, sender.code, count, "already"))
            continue
        reason = f"{count} verified complaints in {days} days (threshold {threshold})"
        if auto_suspend:
            suspend_sender(session, sender, reason, suspend_days, "system", now, automatic=True)
            hits.append(TriggerHit(sender_id, sender.code, count, "suspended"))
        else:
            session.add(
                Sanction(
                    kind="flag",
                    organization_id=sender.organization_id,
                    sender_id=sender_id,
                    reason=reason,
                    starts_at=now,
                    automatic=True,
                    created_by="system",
                )
            )
            session.flush()
            hits.append(TriggerHit(sender_id, sender.code, count, "flagged"))
    return hits


def by_code(session: Session, code: str) -> Sender:
    """Return the sender with this code or raise NotFound."""
    sender = session.scalar(select(Sender).where(col(Sender.code) == code))
    if sender is None:
        raise NotFound(f"no sender {code!r}")
    return sender


def suspended_now(session: Session, now: datetime) -> tuple[list[Organization], list[Sender]]:
    """Return the organizations and senders whose suspension is running."""
    orgs = session.scalars(
        select(Organization).where(col(Organization.suspended_until) > now)
    ).all()
    senders = session.scalars(select(Sender).where(and_(col(Sender.suspended_until) > now))).all()
    return list(orgs), list(senders)


# The feed's changes about an organization's standing (not about a number): every
# carrier organization reads them, and so does the organization itself. A
# sanction is public (the register, /sanctions), so every carrier is told, not
# only those connecting the organization (registry/access; their own list is
# GET /carrier/sanctions): a carrier about to connect it learns it too.
SANCTIONED = "organization.sanctioned"
LIFTED = "organization.sanction_lifted"
FEED_TYPES = (SANCTIONED, LIFTED)


def announce(session: Session, row: Sanction, type_: str = SANCTIONED) -> None:
    """Put a suspension or listing (or its lifting) on the change feed, in this transaction."""
    org = session.get(Organization, row.organization_id)
    sender = session.get(Sender, row.sender_id) if row.sender_id else None
    data = {
        "id": row.id,
        "measure": row.kind,
        "organization": org.slug if org else None,
        "credit_code": org.credit_code if org else None,
        "sender": sender.code if sender else None,
        "address": row.address,
        "reason": row.reason,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
    }
    if type_ == LIFTED:
        data["lifted_at"] = row.lifted_at
    # The regulator acts as "regulator" in the event log (the staff audit names the officer).
    system = row.created_by == "system"
    actor = events.SYSTEM if system else events.Actor("regulator", "console")
    events.record(session, actor, "", type_, organization_id=row.organization_id,
                  state="lifted" if type_ == LIFTED else row.kind, data=data)  # fmt: skip
