"""What the registry holds for one number, as its holder's pages show it.

Per sender: the number's consents, opt-outs and forwarded claims
(``for_holder``); one of its consents, another number's never (``holder_consent``).
"""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.consent import claims
from registry.consent.models import Consent, OptOut
from registry.errors import NotFound
from registry.senders.models import Sender


class HolderSender(TypedDict):
    """One sender's part of ``for_holder``: the sender and this number's rows with it."""

    sender: Sender | None
    consents: list[Consent]
    optouts: list[OptOut]
    claims: list[claims.Claim]  # its forwarded "Y"/"START" replies, which activated nothing


def for_holder(session: Session, phone: str) -> list[HolderSender]:
    """Return, per sender, what the registry holds for this number: consents, opt-outs, claims."""
    senders: dict[int, HolderSender] = {}

    def entry(sender_id: int) -> HolderSender:
        if sender_id not in senders:
            sender = session.get(Sender, sender_id)
            senders[sender_id] = {
                "sender": sender,
                "consents": [],
                "optouts": [],
                "claims": [],
            }
        return senders[sender_id]

    for consent in session.scalars(
        select(Consent).where(col(Consent.phone) == phone).order_by(col(Consent.id))
    ):
        entry(consent.sender_id)["consents"].append(consent)
    for optout in session.scalars(
        select(OptOut).where(col(OptOut.phone) == phone).order_by(col(OptOut.id))
    ):
        entry(optout.sender_id)["optouts"].append(optout)
    for claim in claims.for_phone(session, phone):
        entry(claim.sender_id)["claims"].append(claim)
    return list(senders.values())


def holder_consent(session: Session, phone: str, consent_id: int) -> Consent:
    """Return one of this number's consents; another number's is simply not found."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.phone != phone:
        raise NotFound("no such consent for your number")
    return consent
