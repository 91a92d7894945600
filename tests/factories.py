"""Factories: organizations, keys, senders, consents, made through the real services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.numbers import ranges
from registry.orgs import services as orgs
from registry.orgs.models import Organization
from registry.senders import services as senders
from registry.timeutil import utcnow

HOLDER = "+8613800138000"
HOLDER2 = "+8613900139000"
CARRIER_RANGES = ("+86138", "+86139")


@dataclass
class World:
    """What most tests start from."""

    keys: dict[str, str] = field(default_factory=dict)
    org_ids: dict[str, int] = field(default_factory=dict)
    sender_ids: dict[str, int] = field(default_factory=dict)


def world(session: Session) -> World:
    """Create Acme (acme-cards, finance), ShopMall (shop-deals, retail) and a carrier."""
    w = World()
    for slug, role in (("acme", "sender"), ("shop", "platform"), ("carrier", "carrier")):
        org = orgs.create_org(session, slug, slug.title(), role)
        w.org_ids[slug] = org.id or 0
        _, w.keys[slug] = orgs.create_key(session, org)
    for slug, code, category, address in (
        ("acme", "acme-cards", "finance", "10690001"),
        ("shop", "shop-deals", "retail", "10690002"),
    ):
        sender, _ = senders.create_sender(
            session, w.org_ids[slug], code, code.title(), category, [address]
        )
        w.sender_ids[code] = sender.id or 0
    # The carrier holds the ranges of the suite's numbers (HOLDER, HOLDER2): only
    # a number's carrier may report it disconnected.
    for prefix in CARRIER_RANGES:
        ranges.assign(session, prefix, "carrier", "test")
    session.commit()
    return w


def ago(**kw: float) -> datetime:
    """Return a time in the past."""
    return utcnow() - timedelta(**kw)


def gateway(session: Session, slug: str = "sms-gateway") -> str:
    """Create the registry's SMS gateway organization (role gateway); return its key."""
    org = orgs.create_org(session, slug, "Registry SMS Gateway", "gateway")
    _, key = orgs.create_key(session, org)
    session.commit()
    return key


def attest(session: Session, org: str, *addresses: str) -> None:
    """Have the suite's carrier connect ``org`` at ``addresses`` (attesting them, issue 15)."""
    from registry.access import services as access

    carrier = session.scalar(select(Organization).where(col(Organization.slug) == "carrier"))
    assert carrier is not None, "the world's carrier is missing"
    assert carrier.id is not None
    access.connect(session, carrier.id, org, "enterprise_line", list(addresses), "CN", "test")
