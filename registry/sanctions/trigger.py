"""The automatic trigger: N verified complaints in D days flag (or suspend) a sender.

One call is one pass; ``registry sanctions scan`` runs it once, and a worker
loop calls ``run`` on its schedule (each pass is idempotent: a sender already
flagged or suspended by the trigger inside the window is left alone).

Delegations: the trigger counts verified complaints per *sender*, whoever
checked for it, and flags or suspends the principal's sender — the principal
answers for its senders and chose the agent, and a suspended sender stops the
agent as well (the agent uses the sender's code, and its checks answer
``sender_suspended``). It does not flag the agent organization on its own: an
agent serves many principals, the sanction register has no per-organization
flag, and an automatic sanction of a whole call center on complaints about
one principal's sender would be out of proportion. The officer sees the agent
on the complaint desk and in the statistics ("as agent" rows) and can suspend
it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy.orm import Session

from registry.audit import services as audit
from registry.complaints import desk, routing
from registry.config import Settings
from registry.sanctions.services import TriggerHit, scan
from registry.stats import services as stats
from registry.timeutil import utcnow


def run(session: Session, settings: Settings, now: datetime) -> list[TriggerHit]:
    """Scan the complaints of the window and act; the caller commits."""
    hits = scan(
        session,
        desk.verified_counts(session, settings, settings.sanction_days, now),
        threshold=settings.sanction_complaints,
        days=settings.sanction_days,
        auto_suspend=settings.sanction_auto_suspend,
        suspend_days=settings.sanction_suspend_days,
        now=now,
    )
    for hit in hits:
        if hit.action != "already":
            audit.record(session, None, f"sender.{hit.action}", f"sender:{hit.sender_code}",
                         {"complaints": hit.complaints}, actor="system")  # fmt: skip
    return hits


def run_jobs(
    session_factory: Callable[[], AbstractContextManager[Session]], settings: Settings
) -> int:
    """Run the console's periodic jobs (for ``registry worker``).

    The trigger, the complaint deadline sweep (registry/complaints/routing.py
    ``sweep``), then the rollups, which count what the sweep flagged.

    Each is its own transaction; return how many senders were newly flagged or suspended.
    """
    with session_factory() as session:
        hits = run(session, settings, utcnow())
        session.commit()
    with session_factory() as session:  # before the rollups, which count what it flagged
        routing.sweep(session, settings, utcnow())
        session.commit()
    with session_factory() as session:
        stats.refresh(session, utcnow())
        session.commit()
    return sum(1 for h in hits if h.action != "already")
