"""The dashboard's figures: what needs a regulator's attention now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry.complaints import desk
from registry.config import Settings
from registry.sanctions import services as sanctions


def dashboard_data(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """Return the dashboard's counts and lists."""
    orgs, senders = sanctions.suspended_now(session, now)
    return {
        "suspended_orgs": orgs,
        "suspended_senders": senders,
        "flags": sanctions.flags(session, now, days=settings.sanction_days),
        "answer_days": settings.complaint_answer_days,
        "complaints": desk.counts(session, now, settings.complaint_answer_days),
    }
