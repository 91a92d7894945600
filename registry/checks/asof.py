"""What would the registry have answered at time T? Facts rebuilt from the event log.

Live checks read the current state; complaints ask about the past ("the call
came at 14:05 on the 3rd — was it allowed then?"). Consents change state
through events, so their state at T is the last event at or before T;
opt-outs and disconnections are immutable rows with their recording time;
preferences are the data of the last ``preferences.changed`` event at or
before T. The same ``decide`` then answers.
"""

from __future__ import annotations

import json
from datetime import datetime, time

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.checks.services import CheckRequest, policy_of, zone_for
from registry.config import Settings
from registry.consent.models import Consent, OptOut
from registry.decision import ConsentFact, Decision, Facts, OptOutFact, Preferences, decide
from registry.events.models import Event
from registry.numbers.models import Disconnection

_STATE = {
    "consent.created": None,  # pending or active, as the event's state says
    "consent.confirmed": "active",
    "consent.revoked": "revoked",
    "consent.expired": "expired",
    "consent.voided": "void",
    "consent.restored": None,  # a retracted disconnection gave back the event's state
}


def facts_as_of(
    session: Session, phone: str, sender_id: int, suspended: bool, at: datetime
) -> Facts:
    """Return the facts about (phone, sender) as the registry knew them at ``at``."""
    events = session.scalars(
        select(Event).where(col(Event.phone) == phone, col(Event.at) <= at).order_by(col(Event.id))
    ).all()
    status: dict[int, str] = {}
    activated: dict[int, datetime] = {}
    prefs: Preferences | None = None
    for e in events:
        if e.type.startswith("consent.") and e.consent_id is not None and e.sender_id == sender_id:
            state = _STATE[e.type] or e.state or "pending"
            status[e.consent_id] = state
            if state == "active":
                activated.setdefault(e.consent_id, e.at)
        elif e.type == "preferences.changed" and e.data:
            data = json.loads(e.data)
            dnd = frozenset(
                c
                for c, on in (("voice", data.get("dnd_voice")), ("sms", data.get("dnd_sms")))
                if on
            )
            quiet = None
            if data.get("quiet_hours"):
                a, b = data["quiet_hours"].split("-")
                quiet = (time.fromisoformat(a), time.fromisoformat(b))
            # A refusal set for a time ends at its end (issue 19), in a replay too.
            ends = tuple(
                (key, datetime.fromisoformat(end))
                for key, end in (data.get("refusal_ends") or {}).items()
            )
            prefs = Preferences(
                e.at, dnd, frozenset(data.get("blocked_categories") or ()), quiet, ends
            )
    consents = []
    if status:
        rows = session.scalars(select(Consent).where(col(Consent.id).in_(status))).all()
        for c in rows:
            cid = c.id or 0
            consents.append(
                ConsentFact(
                    cid,
                    frozenset(c.channels.split(",")),
                    status[cid],
                    c.evidence_captured_at,
                    c.created_at,
                    c.category,
                    c.activated_at
                    if c.activated_at and c.activated_at <= at
                    else activated.get(cid),
                    c.expires_at,
                    c.pending_until,
                )
            )
    optouts = tuple(
        OptOutFact(frozenset(o.channels.split(",")), o.received_at, o.created_at, o.expires_at)
        for o in session.scalars(
            select(OptOut).where(
                col(OptOut.phone) == phone,
                col(OptOut.sender_id) == sender_id,
                col(OptOut.created_at) <= at,
                or_(col(OptOut.withdrawn_at).is_(None), col(OptOut.withdrawn_at) > at),
            )
        )
    )
    cut = session.scalars(
        select(col(Disconnection.disconnected_at))
        .where(
            col(Disconnection.phone) == phone,
            col(Disconnection.disconnected_at) <= at,
            col(Disconnection.created_at) <= at,
            # A retracted disconnection counted until it was retracted.
            or_(col(Disconnection.retracted_at).is_(None), col(Disconnection.retracted_at) > at),
        )
        .order_by(col(Disconnection.disconnected_at).desc())
        .limit(1)
    ).first()
    return Facts(suspended, tuple(consents), optouts, prefs, cut)


def decide_as_of(session: Session, settings: Settings, req: CheckRequest, phone: str) -> Decision:
    """Return the decision the registry would have given for ``req`` at ``req.at``."""
    facts = facts_as_of(session, phone, req.sender.id, req.sender.suspended, req.at)
    return decide(
        facts,
        channel=req.channel,
        purpose=req.purpose,
        category=req.category,
        at=req.at,
        policy=policy_of(settings),
        zone=zone_for(phone, settings),
    )
