"""Business filings (业务备案) of delegations: what an agent sends, for whom, from which numbers.

A call center or SMS port company answers for what it sends (谁发送谁负责) and
must file each outsourced business: its name and type, the principal that
commissioned it (the delegation's principal), the outbound numbers, the
targets and content, and a contact. Here a filing belongs to one delegation;
the principal files it (with the grant, required when the agent's ``kind`` is
in ``FILING_REQUIRED``) and alone may alter it; the agent reads it; nobody
else sees it but the regulator. Its outbound addresses must be addresses of
the delegated senders, so that a calling number leads to exactly one filed
business ("Blue Sky Call Center, calling for Acme Bank about credit cards").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry import phones
from registry.errors import (
    Conflict,
    Forbidden,
    InvalidPhoneError,
    NotFound,
    UnknownAddress,
    ValidationFailed,
)
from registry.orgs.models import (
    BUSINESS_TYPES,
    Delegation,
    DelegationFiling,
    DelegationFilingAddress,
    DelegationSender,
    Organization,
)
from registry.senders.models import SenderAddress
from registry.timeutil import utcnow

LIMITS = {
    "business_name": 200,
    "targets": 1000,
    "content": 2000,
    "contact_name": 100,
}
MAX_ADDRESSES = 100


@dataclass(frozen=True, slots=True)
class Filing:
    """A filing as the principal states it (API, console or CLI), before it is checked."""

    business_name: str
    business_type: str
    addresses: list[str]
    targets: str
    content: str
    contact_name: str
    contact_phone: str


@dataclass(frozen=True, slots=True)
class Business:
    """A filed business as it explains a contact: who sent, for whom, about what."""

    delegation_id: int
    agent_slug: str
    agent_name: str
    agent_kind: str
    principal_slug: str
    principal_name: str
    business_name: str
    business_type: str


def _text(value: str, name: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed(
            f"the filing needs its {name.replace('_', ' ')}", field=f"filing.{name}"
        )
    if len(text) > LIMITS[name]:
        raise ValidationFailed(
            f"the {name.replace('_', ' ')} is longer than {LIMITS[name]} characters",
            field=f"filing.{name}",
        )
    if "\x00" in text:
        raise ValidationFailed("text must not contain NUL (U+0000)", field=f"filing.{name}")
    return text


def _addresses(session: Session, delegation_id: int, raw: list[str], region: str) -> list[str]:
    """Return the filed addresses as registered: each one of the delegated senders' addresses."""
    if not raw:
        raise ValidationFailed("file at least one outbound address", field="filing.addresses")
    if len(raw) > MAX_ADDRESSES:
        raise ValidationFailed(
            f"at most {MAX_ADDRESSES} outbound addresses", field="filing.addresses"
        )
    senders = select(col(DelegationSender.sender_id)).where(
        col(DelegationSender.delegation_id) == delegation_id
    )
    found: list[str] = []
    for i, text in enumerate(raw):
        try:
            forms = phones.calling_number_forms(text, region)
        except phones.InvalidPhone as exc:
            raise InvalidPhoneError(str(exc), field=f"filing.addresses.{i}") from exc
        stored = session.scalar(
            select(col(SenderAddress.address))
            .where(col(SenderAddress.address).in_(forms), col(SenderAddress.sender_id).in_(senders))
            .limit(1)
        )
        if stored is None:
            raise UnknownAddress(
                f"{text!r} is not an address of the delegated senders; register it with "
                "the sender first",
                field=f"filing.addresses.{i}",
            )
        if stored not in found:
            found.append(stored)
    return found


def save(session: Session, delegation: Delegation, filing: Filing, region: str) -> DelegationFiling:
    """Check ``filing`` and store it as the delegation's (replacing an earlier one)."""
    if filing.business_type not in BUSINESS_TYPES:
        raise ValidationFailed(
            f"business_type must be one of {', '.join(BUSINESS_TYPES)}",
            field="filing.business_type",
        )
    values = {name: _text(getattr(filing, name), name) for name in LIMITS}
    try:
        contact_phone = phones.to_e164(filing.contact_phone or "", region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="filing.contact_phone") from exc
    session.flush()  # the delegation's id, if it was just made
    delegation_id = int(delegation.id or 0)
    addresses = _addresses(session, delegation_id, filing.addresses, region)
    row = session.get(DelegationFiling, delegation_id)
    now = utcnow()
    if row is None:
        row = DelegationFiling(
            delegation_id=delegation_id,
            business_type=filing.business_type,
            contact_phone=contact_phone,
            filed_at=now,
            updated_at=now,
            **values,
        )
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.business_type, row.contact_phone, row.updated_at = (
            filing.business_type,
            contact_phone,
            now,
        )
    session.flush()
    session.execute(
        delete(DelegationFilingAddress).where(
            col(DelegationFilingAddress.delegation_id) == delegation_id
        )
    )
    for address in addresses:
        session.add(DelegationFilingAddress(delegation_id=delegation_id, address=address))
    session.flush()
    return row


def _delegation(session: Session, delegation_id: int, lock: bool = False) -> Delegation:
    # ``lock``: two alterations of one filing at once queue on the delegation's
    # row (PostgreSQL; SQLite has one writer anyway), so neither trips over the
    # other's rows and the last one wins whole.
    delegation = session.get(Delegation, delegation_id, with_for_update=lock)
    if delegation is None:
        raise NotFound(f"no delegation {delegation_id}")
    return delegation


def file(
    session: Session, org_id: int, delegation_id: int, filing: Filing, region: str
) -> Delegation:
    """File or alter a delegation's business, as its principal; the agent and others are refused."""
    delegation = _delegation(session, delegation_id, lock=True)
    if delegation.principal_id != org_id:
        if delegation.agent_id == org_id:
            raise Forbidden("only the principal may file or alter the business; the agent reads it")
        raise Forbidden("this delegation is not yours")
    if delegation.revoked_at is not None:
        raise Conflict("the delegation is revoked; grant a new one")
    save(session, delegation, filing, region)
    return delegation


def readable(session: Session, org_id: int, delegation_id: int) -> Delegation:
    """Return a delegation its principal or agent asks about; anyone else is refused."""
    delegation = _delegation(session, delegation_id)
    if org_id not in (delegation.principal_id, delegation.agent_id):
        raise Forbidden("only the principal and the agent may read this delegation")
    return delegation


def of(session: Session, delegation_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Return the filings of these delegations as plain data, by delegation id."""
    ids = list(delegation_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(DelegationFiling).where(col(DelegationFiling.delegation_id).in_(ids))
    ).all()
    addresses: dict[int, list[str]] = {}
    for delegation_id, address in session.execute(
        select(col(DelegationFilingAddress.delegation_id), col(DelegationFilingAddress.address))
        .where(col(DelegationFilingAddress.delegation_id).in_(ids))
        .order_by(col(DelegationFilingAddress.address))
    ):
        addresses.setdefault(delegation_id, []).append(address)
    return {
        r.delegation_id: {
            "business_name": r.business_name,
            "business_type": r.business_type,
            "addresses": addresses.get(r.delegation_id, []),
            "targets": r.targets,
            "content": r.content,
            "contact_name": r.contact_name,
            "contact_phone": r.contact_phone,
            "filed_at": r.filed_at,
            "updated_at": r.updated_at,
        }
        for r in rows
    }


def _business_query() -> Any:
    agent, principal = aliased(Organization), aliased(Organization)
    return (
        select(
            col(Delegation.id),
            col(agent.slug),
            col(agent.name),
            col(agent.kind),
            col(principal.slug),
            col(principal.name),
            col(DelegationFiling.business_name),
            col(DelegationFiling.business_type),
            col(Delegation.principal_id),
            col(Delegation.agent_id),
            col(Delegation.created_at),
            col(Delegation.revoked_at),
            col(Delegation.expires_at),
        )
        .join(DelegationFiling, col(DelegationFiling.delegation_id) == col(Delegation.id))
        .join(agent, col(agent.id) == col(Delegation.agent_id))
        .join(principal, col(principal.id) == col(Delegation.principal_id))
        .order_by(col(Delegation.id).desc())
    )


def _live_at(row: Any, at: datetime) -> bool:
    """Tell whether the delegation of a business row was in force at ``at``."""
    created, revoked, expires = row[10], row[11], row[12]
    return created <= at and (revoked is None or revoked > at) and (expires is None or expires > at)


def _business(row: Any) -> Business:
    return Business(*row[:8])


def by_address(session: Session, address: str, at: datetime | None = None) -> list[Business]:
    """Return the businesses in force at ``at`` (default now) filed with this registered address."""
    when = at or utcnow()
    query = (
        _business_query()
        .join(
            DelegationFilingAddress,
            col(DelegationFilingAddress.delegation_id) == col(Delegation.id),
        )
        .where(col(DelegationFilingAddress.address) == address)
    )
    return [_business(r) for r in session.execute(query) if _live_at(r, when)]


def for_contacts(session: Session, contacts: list[dict[str, Any]]) -> None:
    """Set ``business`` on each contact (a check row) made by an agent under a filed business.

    Each contact names ``sender_id``, ``organization_id``, ``agent_id`` and
    ``checked_at``; the business is the one filed on the latest delegation
    from that principal to that agent covering that sender in force then.
    One query for the whole page.
    """
    pairs = {(c["organization_id"], c["agent_id"]) for c in contacts if c.get("agent_id")}
    for c in contacts:
        c.setdefault("business", None)
    if not pairs:
        return
    query = (
        _business_query()
        .add_columns(col(DelegationSender.sender_id))
        .join(DelegationSender, col(DelegationSender.delegation_id) == col(Delegation.id))
        .where(
            or_(
                *(
                    (col(Delegation.principal_id) == p) & (col(Delegation.agent_id) == a)
                    for p, a in pairs
                )
            )
        )
    )
    rows = session.execute(query).all()
    for c in contacts:
        if not c.get("agent_id"):
            continue
        for r in rows:  # newest delegation first
            if (r[8], r[9], r[13]) == (c["organization_id"], c["agent_id"], c["sender_id"]) and (
                _live_at(r, c["checked_at"])
            ):
                c["business"] = _business(r)
                break


def for_complaint(
    session: Session,
    organization_id: int | None,
    agent_id: int | None,
    sender_id: int | None,
    address: str,
    at: datetime,
) -> Business | None:
    """Return the filed business that explains a complaint's contact, if any.

    The agent whose check the complaint rests on, when known; else the
    business filed with the address the contact came from.
    """
    if sender_id is None:
        return None
    if agent_id is not None and organization_id is not None:
        contact: dict[str, Any] = {
            "sender_id": sender_id,
            "organization_id": organization_id,
            "agent_id": agent_id,
            "checked_at": at,
        }
        for_contacts(session, [contact])
        found: Business | None = contact["business"]
        return found
    matches = by_address(session, address, at)
    return matches[0] if matches else None
