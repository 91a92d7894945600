"""Record and read the staff audit trail: every action, appended in the action's transaction."""

from __future__ import annotations

import json
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.audit.models import StaffAudit
from registry.timeutil import utcnow


class Staff(Protocol):
    """The acting staff account as the trail names it (``registry.admin.models.StaffUser``)."""

    @property
    def id(self) -> int | None: ...

    @property
    def email(self) -> str: ...


def record(
    session: Session,
    staff: Staff | None,
    action: str,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
    ip: str | None = None,
) -> StaffAudit:
    """Append one audit entry; the caller commits it with the action itself."""
    entry = StaffAudit(
        at=utcnow(),
        staff_id=staff.id if staff is not None else None,
        actor=actor or (staff.email if staff is not None else "system"),
        action=action,
        subject=subject,
        data=json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)[:4000]
        if data
        else None,
        ip=ip,
    )
    session.add(entry)
    session.flush()
    return entry


def recent(
    session: Session, *, staff_id: int | None = None, action: str | None = None, limit: int = 200
) -> list[StaffAudit]:
    """Return the newest audit entries, optionally of one account or action prefix."""
    query = select(StaffAudit).order_by(col(StaffAudit.id).desc()).limit(limit)
    if staff_id is not None:
        query = query.where(col(StaffAudit.staff_id) == staff_id)
    if action:
        query = query.where(col(StaffAudit.action).startswith(action))
    return list(session.scalars(query))
