"""Claims: a holder's "Y" or "START" as a sender forwarded it, recorded and never acted on.

A confirmation or a re-subscription is the holder's statement about a sender,
so it counts only through channels the sender does not control (the citizen
site, a one-time code, a reply to the registry's own number brought by the
gateway). When a sender forwards such a reply from its own port, the registry
cannot tell it from one the sender made up; it keeps it as a ``claim.recorded``
event in the number's hash-chained log, where the holder (on the site) and the
regulator (in the console) see it, and changes nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.events import services as events
from registry.events.models import Event
from registry.events.services import Actor
from registry.orgs.models import Organization
from registry.senders.models import Sender
from registry.senders.services import SenderRef

CLAIM = "claim.recorded"


def record_claim(
    session: Session,
    actor: Actor,
    sender: SenderRef,
    phone: str,
    keyword: str,
    text: str,
    to: str,
    received_at: datetime,
) -> None:
    """Record that ``sender`` forwarded ``text`` (a ``confirm`` or ``opt_in``) from ``phone``."""
    events.record(
        session,
        actor,
        phone,
        CLAIM,
        sender_id=sender.id,
        organization_id=sender.organization_id,
        channels="sms",
        state="claimed",
        data={
            "keyword": keyword,
            "text": events.quoted(text),
            "to": to,
            "received_at": received_at,
        },
    )


@dataclass(frozen=True, slots=True)
class Claim:
    """One recorded claim, as the holder and the regulator read it."""

    id: int
    at: datetime
    phone: str
    sender_id: int
    sender_code: str
    sender_name: str
    organization: str
    agent: str | None
    keyword: str
    text: str
    to: str


def _claims(session: Session, *where: Any, limit: int) -> list[Claim]:
    agent = Organization.__table__.alias("agent")  # type: ignore[attr-defined]
    query = (
        select(
            col(Event.id),
            col(Event.at),
            col(Event.phone),
            col(Event.data),
            col(Sender.id),
            col(Sender.code),
            col(Sender.name),
            col(Organization.slug),
            agent.c.slug,
        )
        .join(Sender, col(Sender.id) == Event.sender_id)
        .join(Organization, col(Organization.id) == Event.organization_id)
        .outerjoin(agent, agent.c.id == Event.agent_id)
        .where(col(Event.type) == CLAIM, *where)
        .order_by(col(Event.id).desc())
        .limit(limit)
    )
    out = []
    rows: Any = session.execute(query)  # the aliased table's column is untyped
    for id_, at, phone, data, sender_id, code, name, org, agent_slug in rows:
        detail = json.loads(data) if data else {}
        out.append(
            Claim(
                id_,
                at,
                phone,
                sender_id,
                code,
                name,
                org,
                agent_slug,
                str(detail.get("keyword", "")),
                str(detail.get("text", "")),
                str(detail.get("to", "")),
            )
        )
    return out


def for_phone(session: Session, phone: str, limit: int = 1000) -> list[Claim]:
    """Return the claims senders made about this number, newest first."""
    return _claims(session, col(Event.phone) == phone, limit=limit)


def recent(session: Session, org_id: int | None = None, limit: int = 200) -> list[Claim]:
    """Return the newest claims, of every organization or of one (the regulator's view)."""
    where = [col(Event.organization_id) == org_id] if org_id is not None else []
    return _claims(session, *where, limit=limit)
