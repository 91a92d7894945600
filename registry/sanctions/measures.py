"""The range of measures (issue 17): notice, interview, rectification, fine, listing, address.

Every measure is a row of the sanction register with its reason, evidence
(complaint and check ids of the organization's own senders), officer and
dates. Every action first claims the organization's ``version`` with one
conditional UPDATE (``claim``): two officers acting on one organization at
once cannot both win, and the loser is told to reload. Commit is the caller's;
the staff audit is the view's (``registry.admin.session.record``).

Fines (SMS rules): at most three times the illegal gains and never above
30,000 yuan; 10,000 yuan at most where there are no illegal gains. Amounts are
whole yuan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.models import CheckLog
from registry.complaints.models import Complaint
from registry.errors import Conflict, NotFound, ValidationFailed
from registry.orgs.models import Organization
from registry.sanctions import services
from registry.sanctions.models import Sanction
from registry.senders.models import Sender, SenderAddress

FINE_CAP = 30_000
FINE_CAP_NO_GAINS = 10_000
MAX_MINUTES = 4000
MAX_EVIDENCE_IDS = 100


def fine_cap(illegal_gains: int) -> int:
    """Return the largest fine allowed for these illegal gains (yuan)."""
    if illegal_gains < 0:
        raise ValidationFailed("illegal gains cannot be negative", field="illegal_gains")
    if illegal_gains == 0:
        return FINE_CAP_NO_GAINS
    return min(3 * illegal_gains, FINE_CAP)


def claim(session: Session, org: Organization, version: int | None) -> None:
    """Take the organization for one enforcement action, or raise Conflict.

    ``version`` is what the officer's form was drawn from; the UPDATE succeeds
    only if nobody acted since (on PostgreSQL it also holds the row until commit).
    """
    expected = org.version if version is None else version
    done = session.execute(
        update(Organization)
        .where(col(Organization.id) == org.id, col(Organization.version) == expected)
        .values(version=expected + 1)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"another officer acted on {org.slug} since this page was loaded; "
            "reload it and decide again",
            field="version",
        )
    session.refresh(org)


def _ids(text: str, field: str) -> list[int]:
    ids = [int(x) for x in re.findall(r"\d+", text)]
    if re.sub(r"[\d\s,;#]+", "", text):
        raise ValidationFailed("list ids as numbers separated by commas", field=field)
    if len(ids) > MAX_EVIDENCE_IDS:
        raise ValidationFailed(f"at most {MAX_EVIDENCE_IDS} ids", field=field)
    return sorted(set(ids))


def evidence_of(session: Session, org: Organization, complaints: str, checks: str) -> str | None:
    """Check the evidence ids belong to the organization (as owner or agent); return its text."""
    complaint_ids = _ids(complaints or "", "complaints")
    check_ids = _ids(checks or "", "checks")
    if complaint_ids:
        found = set(
            session.scalars(
                select(col(Complaint.id)).where(
                    col(Complaint.id).in_(complaint_ids),
                    (col(Complaint.organization_id) == org.id)
                    | (col(Complaint.agent_id) == org.id),
                )
            )
        )
        missing = [str(i) for i in complaint_ids if i not in found]
        if missing:
            raise ValidationFailed(
                f"no complaint about {org.slug}: {', '.join(missing)}", field="complaints"
            )
    if check_ids:
        found = set(
            session.scalars(
                select(col(CheckLog.id)).where(
                    col(CheckLog.id).in_(check_ids),
                    (col(CheckLog.organization_id) == org.id) | (col(CheckLog.agent_id) == org.id),
                )
            )
        )
        missing = [str(i) for i in check_ids if i not in found]
        if missing:
            raise ValidationFailed(f"no check by {org.slug}: {', '.join(missing)}", field="checks")
    parts = []
    if complaint_ids:
        parts.append("complaints: " + ", ".join(map(str, complaint_ids)))
    if check_ids:
        parts.append("checks: " + ", ".join(map(str, check_ids)))
    return "; ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Basis:
    """What every measure carries: why, on what evidence, by whom, when."""

    reason: str
    evidence: str | None
    by: str
    now: datetime


def basis(
    session: Session,
    org: Organization,
    reason: str,
    complaints: str,
    checks: str,
    by: str,
    now: datetime,
) -> Basis:
    """Validate the reason and evidence of a measure."""
    text = services._check(reason, 1)
    return Basis(text, evidence_of(session, org, complaints, checks), by, now)


def _row(org: Organization, kind: str, b: Basis, **fields: object) -> Sanction:
    return Sanction(
        kind=kind,
        organization_id=org.id,  # type: ignore[arg-type]
        reason=b.reason,
        evidence=b.evidence,
        starts_at=b.now,
        created_by=b.by,
        **fields,  # type: ignore[arg-type]
    )


def _add(session: Session, row: Sanction) -> Sanction:
    session.add(row)
    session.flush()
    return row


def notice(session: Session, org: Organization, b: Basis) -> Sanction:
    """A notice (通报): published on the register with its reason."""
    return _add(session, _row(org, "notice", b))


def interview(
    session: Session, org: Organization, b: Basis, meets_at: datetime | None, minutes: str
) -> Sanction:
    """An interview (约谈) on ``meets_at``, with its minutes."""
    if meets_at is None:
        raise ValidationFailed("an interview needs its date", field="meets_at")
    text = (minutes or "").strip()
    if len(text) > MAX_MINUTES:
        raise ValidationFailed(f"minutes longer than {MAX_MINUTES} characters", field="minutes")
    return _add(session, _row(org, "interview", b, meets_at=meets_at, minutes=text or None))


def rectification(
    session: Session, org: Organization, b: Basis, deadline: datetime | None
) -> Sanction:
    """A rectification order (责令整改) due by ``deadline``; a past deadline is refused."""
    if deadline is None:
        raise ValidationFailed("a rectification order needs a deadline", field="deadline")
    if deadline <= b.now:
        raise ValidationFailed("the deadline must be in the future", field="deadline")
    return _add(session, _row(org, "rectification", b, deadline=deadline, ends_at=deadline))


def fine(
    session: Session, org: Organization, b: Basis, illegal_gains: int | None, amount: int | None
) -> Sanction:
    """A fine of ``amount`` yuan, within the cap for ``illegal_gains`` (``fine_cap``)."""
    gains = illegal_gains or 0
    cap = fine_cap(gains)
    if amount is None or amount <= 0:
        raise ValidationFailed("the fine must be a positive number of yuan", field="amount")
    if amount > cap:
        raise ValidationFailed(
            f"the fine may be at most {cap} yuan for illegal gains of {gains} yuan "
            f"(three times the gains, never above {FINE_CAP}; {FINE_CAP_NO_GAINS} without gains)",
            field="amount",
        )
    return _add(session, _row(org, "fine", b, illegal_gains=gains, amount=amount))


def listing(session: Session, org: Organization, b: Basis, days: int) -> Sanction:
    """Put the organization on the credit list for ``days``: no new senders, keys, delegations."""
    services._check(b.reason, days)
    until = b.now + timedelta(days=days)
    org.listed_until = max(until, org.listed_until) if org.listed_until else until
    row = _add(session, _row(org, "listing", b, ends_at=until))
    services.announce(session, row)
    return row


def suspend_address(
    session: Session, org: Organization, b: Basis, address: str, days: int
) -> Sanction:
    """Suspend one caller number or SMS port of one of the organization's senders."""
    services._check(b.reason, days)
    cleaned = (address or "").replace(" ", "").replace("-", "")
    row = session.execute(
        select(SenderAddress, Sender)
        .join(Sender, col(Sender.id) == SenderAddress.sender_id)
        .where(col(SenderAddress.address) == cleaned)
    ).first()
    if row is None or row[1].organization_id != org.id:
        raise ValidationFailed(f"{org.slug} has no address {address!r}", field="address")
    found, sender = row
    until = b.now + timedelta(days=days)
    found.suspended_until = until
    measure = _add(
        session,
        _row(
            org, "suspension", b, sender_id=sender.id, address=cleaned, ends_at=until,
            carrier_id=found.carrier_id,  # the carrier that connects it sees the measure
        ),
    )  # fmt: skip
    services.announce(session, measure)
    return measure


def measure_of(session: Session, org: Organization, sanction_id: int) -> Sanction:
    """Return one of the organization's register rows or raise NotFound."""
    row = session.get(Sanction, sanction_id)
    if row is None or row.organization_id != org.id:
        raise NotFound(f"{org.slug} has no measure {sanction_id}")
    return row


def running(row: Sanction, now: datetime) -> bool:
    """Tell whether a measure is still in force (not lifted, not ended, not done)."""
    if row.lifted_at is not None or row.done_at is not None:
        return False
    if row.kind in ("suspension", "listing"):
        return row.ends_at is not None and row.ends_at > now
    return row.kind in ("rectification", "fine")


def lift(
    session: Session, org: Organization, row: Sanction, reason: str, by: str, now: datetime
) -> Sanction:
    """End a measure before its time; the reason is required and kept."""
    if not running(row, now):
        raise Conflict(f"measure {row.id} is not in force")
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("lifting a measure early needs a reason", field="lift_reason")
    if len(text) > services.MAX_REASON:
        raise ValidationFailed("the reason is longer than 500 characters", field="lift_reason")
    if row.kind == "suspension" and row.address:
        address = session.scalar(
            select(SenderAddress).where(col(SenderAddress.address) == row.address)
        )
        if address is not None:
            address.suspended_until = None
    elif row.kind == "suspension" and row.sender_id:
        sender = session.get(Sender, row.sender_id)
        if sender is not None and sender.suspended_until and sender.suspended_until > now:
            services.lift_sender(session, sender, now)
    elif row.kind == "suspension":
        if org.suspended_until and org.suspended_until > now:
            services.lift_org(session, org, now)
    elif row.kind == "listing":
        row.lifted_at = now
        session.flush()
        org.listed_until = _latest_listing(session, org, now)
    # lift_sender / lift_org closed (and announced) the row already.
    announced = row.kind == "suspension" and not row.address and row.lifted_at is not None
    row.lifted_at = now
    row.lift_reason = text
    row.lifted_by = by
    session.flush()
    if not announced and row.kind in ("suspension", "listing"):
        services.announce(session, row, services.LIFTED)
    return row


def _latest_listing(session: Session, org: Organization, now: datetime) -> datetime | None:
    ends = session.scalars(
        select(col(Sanction.ends_at)).where(
            col(Sanction.ends_at).is_not(None),
            col(Sanction.organization_id) == org.id,
            col(Sanction.kind) == "listing",
            col(Sanction.lifted_at).is_(None),
            col(Sanction.ends_at) > now,
        )
    ).all()
    return max(e for e in ends if e is not None) if ends else None


def complete(session: Session, org: Organization, row: Sanction, now: datetime) -> Sanction:
    """Record that a rectification was carried out or a fine was paid."""
    if row.kind not in ("rectification", "fine"):
        raise Conflict("only a rectification order or a fine can be completed")
    if row.done_at is not None or row.lifted_at is not None:
        raise Conflict(f"measure {row.id} is already closed")
    row.done_at = now
    session.flush()
    return row


def overdue(session: Session, now: datetime) -> list[tuple[Sanction, str]]:
    """Return the rectification orders past their deadline and not done, with the org's slug."""
    rows = session.execute(
        select(Sanction, col(Organization.slug))
        .join(Organization, col(Organization.id) == Sanction.organization_id)
        .where(
            col(Sanction.kind) == "rectification",
            col(Sanction.done_at).is_(None),
            col(Sanction.lifted_at).is_(None),
            col(Sanction.deadline) < now,
        )
        .order_by(col(Sanction.deadline))
    )
    return [(s, slug) for s, slug in rows]
