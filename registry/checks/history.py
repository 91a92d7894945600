"""Reading checks already made: a receipt's content, and who checked a number.

The queries of the site, the API and the CLI over the check log; the checks
themselves are ``checks.services``', their log rows ``checks.checklog``'s.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry.checks import receipts
from registry.checks.models import CheckLog
from registry.config import Settings
from registry.errors import NotFound
from registry.orgs.models import Organization
from registry.senders.models import Sender


def read_receipt(session: Session, settings: Settings, check_id: str) -> dict[str, Any]:
    """Return the verified content of a receipt; raise InvalidToken for a forged id."""
    claims = receipts.verify(settings, check_id)
    attribution = (
        {"agent": claims.agent, "on_behalf_of": claims.on_behalf_of}
        if claims.agent is not None
        else {}
    )
    if claims.caller is not None:
        attribution["from"] = claims.caller
    common = {
        "check_id": check_id,
        "sender": claims.sender,
        "channel": claims.channel,
        "purpose": claims.purpose,
        "checked_at": claims.checked_at,
        # The feed number the decision saw (absent on receipts signed before it existed).
        "registry_seq": claims.registry_seq,
        # The same number under the name every answer and certificate uses for it.
        "data_version": claims.registry_seq,
        "valid_until": claims.valid_until,
    }
    if claims.batch_id is None:
        if claims.phone is None or claims.decision is None:
            raise NotFound("no such receipt")
        return attribution | {
            "check_id": check_id,
            "phone": claims.phone,
            "sender": claims.sender,
            "channel": claims.channel,
            "purpose": claims.purpose,
            "decision": claims.decision,
            "reason": claims.reason,
            "checked_at": claims.checked_at,
            "registry_seq": claims.registry_seq,
            "data_version": claims.registry_seq,
            "valid_until": claims.valid_until,
        }
    log = CheckLog.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(log.c.phone, log.c.decision, log.c.reason)
        .where(log.c.batch_id == claims.batch_id)
        .order_by(log.c.id)
    ).all()
    return (
        attribution
        | common
        | {"results": [{"phone": p, "decision": dec, "reason": r} for p, dec, r in rows]}
    )


def checks_for_phone(
    session: Session, phone: str, limit: int = 200, sender_id: int | None = None
) -> list[dict[str, Any]]:
    """Return who checked this number, newest first: sender, its organization, and any agent.

    With ``sender_id``, only that sender's checks (the holder's "who is calling me").
    """
    log = CheckLog.__table__  # type: ignore[attr-defined]
    owner, agent = aliased(Organization), aliased(Organization)
    rows = session.execute(
        select(
            log.c.checked_at,
            log.c.channel,
            log.c.purpose,
            log.c.decision,
            log.c.reason,
            log.c.sender_id,
            log.c.organization_id,
            log.c.agent_id,
            col(Sender.code).label("sender_code"),
            col(Sender.name).label("sender_name"),
            col(owner.name).label("organization"),
            col(agent.name).label("agent"),
        )
        .join(Sender, col(Sender.id) == log.c.sender_id)
        .join(owner, col(owner.id) == log.c.organization_id)
        .outerjoin(agent, col(agent.id) == log.c.agent_id)
        .where(log.c.phone == phone)
        .where(log.c.sender_id == sender_id if sender_id is not None else true())
        .order_by(log.c.checked_at.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
