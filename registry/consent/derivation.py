"""Re-deriving consents: the state a consent's events imply, compared with its row.

Every change writes an event in the same transaction as the row it changes
(consent/services.py); ``rederive`` (``registry consent rederive``) checks
that the rows are what their events say, and may repair them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.consent.models import Consent
from registry.events import services as events
from registry.events.models import Event

_ENDING = {"consent.revoked": "revoked", "consent.expired": "expired", "consent.voided": "void"}


def derive(consent: Consent, history: list[Event]) -> dict[str, object]:
    """Return the state a consent's events imply: status, activated_at, ended_at."""
    status: str | None = None
    activated_at: datetime | None = None
    ended_at: datetime | None = None
    for e in history:
        if e.type == "consent.created":
            status = e.state or "pending"
            if status == "active":
                activated_at = consent.evidence_captured_at
        elif e.type == "consent.confirmed":
            status, activated_at = "active", e.at
        elif e.type in _ENDING:
            status, ended_at = _ENDING[e.type], e.at
        elif e.type == "consent.restored":  # a retracted disconnection gave it back
            status, ended_at = e.state, None
    return {"status": status, "activated_at": activated_at, "ended_at": ended_at}


def rederive(session: Session, fix: bool = False) -> list[tuple[int, str, object, object]]:
    """Compare every consent with the state its events imply; optionally repair the row.

    Returns (consent id, field, stored, derived) for each difference.
    """
    diffs: list[tuple[int, str, object, object]] = []
    for consent in session.scalars(select(Consent).order_by(col(Consent.id))):
        derived = derive(consent, events.for_consent(session, consent.id or 0))
        for field, value in derived.items():
            stored = getattr(consent, field)
            if stored != value:
                diffs.append((consent.id or 0, field, stored, value))
                if fix:
                    setattr(consent, field, value)
    return diffs
