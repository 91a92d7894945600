"""Senders: register them, list them, and resolve a code for a caller."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry import phones
from registry.access.models import Connection
from registry.database.statements import fingerprint
from registry.errors import (
    Conflict,
    Forbidden,
    InvalidPhoneError,
    UnknownAddress,
    UnknownSender,
    ValidationFailed,
)
from registry.orgs.models import Delegation, DelegationSender, Organization
from registry.orgs.services import Caller, ensure_id_not_listed
from registry.senders.models import CATEGORIES, Sender, SenderAddress
from registry.timeutil import utcnow

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,63}")
ADDRESS = re.compile(r"\+?[0-9]{3,20}")


@dataclass(frozen=True, slots=True)
class SenderRef:
    """A sender as a request acting for it needs it: plain values, no ORM object."""

    id: int
    code: str
    name: str
    category: str
    organization_id: int
    suspended: bool
    org_slug: str = ""
    agent_id: int | None = None  # set when the caller acts for the owner by delegation
    agent_slug: str | None = None
    # Of the sender, owner and delegation rows this rests on (registry/copies.py).
    fingerprint: tuple[str, ...] = ()


def clean_address(raw: str, region: str = "CN") -> str:
    """Return an address as stored (phones.to_address), or the text without separators.

    For lookups by what a holder or a gateway typed: an address that does not
    parse is simply not found.
    """
    try:
        return phones.to_address(raw, region)
    except phones.InvalidPhone:
        return str(raw).replace(" ", "").replace("-", "")


def may_present(session: Session, org_id: int, sender_id: int, owner_id: int) -> bool:
    """Tell whether the organization ``org_id`` may present addresses of the sender.

    Its owner may; so may an agent holding a live delegation for it (a call
    center's trunk, connected to the call center, presenting the merchant's sender).
    """
    if org_id == owner_id:
        return True
    now = utcnow()
    grant = session.scalar(
        select(col(Delegation.id))
        .join(DelegationSender, col(DelegationSender.delegation_id) == Delegation.id)
        .where(
            col(DelegationSender.agent_id) == org_id,
            col(DelegationSender.sender_id) == sender_id,
            col(Delegation.revoked_at).is_(None),
            or_(col(Delegation.expires_at).is_(None), col(Delegation.expires_at) > now),
        )
        .limit(1)
    )
    return grant is not None


def attest(found: SenderAddress, connection: Connection, now: datetime) -> None:
    """Mark a sender address attested by a carrier's live connection."""
    found.attested_at, found.attested_via = now, "connection"
    found.carrier_id, found.connection_id = connection.carrier_id, connection.id
    found.withdrawn_at = None


def _attest_connected(
    session: Session, sender_id: int, owner_id: int, addresses: list[str]
) -> None:
    """Attest newly registered addresses a carrier already connects for the owner (or its agent)."""
    live = session.scalars(
        select(Connection).where(
            col(Connection.address).in_(addresses), col(Connection.withdrawn_at).is_(None)
        )
    ).all()
    by_address = {c.address: c for c in live}
    if not by_address:
        return
    now = utcnow()
    for found in session.scalars(
        select(SenderAddress).where(
            col(SenderAddress.sender_id) == sender_id,
            col(SenderAddress.address).in_(list(by_address)),
        )
    ):
        connection = by_address[found.address]
        if may_present(session, connection.organization_id, sender_id, owner_id):
            attest(found, connection, now)
    session.flush()


def _clean_all(addresses: list[str], region: str) -> list[str]:
    cleaned = []
    for i, raw in enumerate(addresses):
        try:
            cleaned.append(phones.to_address(raw, region))
        except phones.InvalidPhone as exc:
            raise InvalidPhoneError(
                f"not a caller number or SMS port: {raw!r}", field=f"addresses.{i}"
            ) from exc
    return cleaned


def _ensure_free(session: Session, org_id: int, cleaned: list[str]) -> None:
    """Refuse addresses another sender holds, naming whose they are (no address is two's)."""
    taken = session.execute(
        select(col(SenderAddress.address), col(Sender.organization_id), col(Sender.code),
               col(SenderAddress.attested_at))
        .join(Sender, col(Sender.id) == SenderAddress.sender_id)
        .where(col(SenderAddress.address).in_(cleaned))
    ).all()  # fmt: skip
    if taken:
        address, owner, code, attested = taken[0]
        whose = "your sender" if owner == org_id else "another organization's sender"
        state = "attested" if attested is not None else "claimed, not attested"
        raise Conflict(
            f"address already registered: {address} is held by {whose} {code} ({state}); "
            "no address belongs to two senders",
            field="addresses",
        )
    live = session.execute(
        select(col(Connection.address), col(Connection.organization_id)).where(
            col(Connection.address).in_(cleaned), col(Connection.withdrawn_at).is_(None)
        )
    ).all()
    for address, connected in live:
        if connected != org_id and not session.scalar(
            select(col(DelegationSender.sender_id))
            .join(Delegation, col(Delegation.id) == DelegationSender.delegation_id)
            .where(col(DelegationSender.agent_id) == connected,
                   col(Delegation.principal_id) == org_id, col(Delegation.revoked_at).is_(None))
            .limit(1)
        ):  # fmt: skip
            raise Conflict(
                f"address already registered: a carrier connects {address} for another "
                "organization",
                field="addresses",
            )


def create_sender(
    session: Session,
    org_id: int,
    code: str,
    name: str,
    category: str,
    addresses: list[str],
    region: str = "CN",
) -> tuple[Sender, list[str]]:
    """Register a sender with its addresses; codes and addresses are unique registry-wide.

    An address becomes usable as a check's ``from`` once attested: at once if a
    carrier already connects it for this organization (registry/access).
    """
    ensure_id_not_listed(session, org_id, utcnow(), "register new senders or addresses")
    if not CODE.fullmatch(code):
        raise ValidationFailed("code: 2-64 letters, digits, '_', '.', '-'", field="code")
    if category not in CATEGORIES:
        raise ValidationFailed(f"category must be one of {', '.join(CATEGORIES)}", field="category")
    if not name.strip():
        raise ValidationFailed("name must not be empty", field="name")
    cleaned = _clean_all(addresses, region)
    if session.scalar(select(col(Sender.id)).where(col(Sender.code) == code)) is not None:
        raise Conflict(f"sender code {code!r} is taken", field="code")
    _ensure_free(session, org_id, cleaned)
    sender = Sender(organization_id=org_id, code=code, name=name.strip(), category=category)
    session.add(sender)
    session.flush()
    unique = sorted(set(cleaned))
    for address in unique:
        session.add(SenderAddress(sender_id=sender.id, address=address))  # type: ignore[arg-type]
    session.flush()
    if unique:
        _attest_connected(session, sender.id or 0, org_id, unique)
    return sender, unique


def add_addresses(
    session: Session, org_id: int, code: str, addresses: list[str], region: str = "CN"
) -> Sender:
    """Add addresses to one of the organization's senders; attested at once when connected."""
    ensure_id_not_listed(session, org_id, utcnow(), "register new senders or addresses")
    sender = session.scalar(select(Sender).where(col(Sender.code) == code))
    if sender is None:
        raise UnknownSender(f"no sender with code {code!r}", field="sender")
    if sender.organization_id != org_id:
        raise Forbidden(f"sender {code!r} belongs to another organization", field="sender")
    if not addresses:
        raise ValidationFailed("name at least one address", field="addresses")
    cleaned = _clean_all(addresses, region)
    _ensure_free(session, org_id, cleaned)
    unique = sorted(set(cleaned))
    for address in unique:
        session.add(SenderAddress(sender_id=sender.id, address=address))  # type: ignore[arg-type]
    session.flush()
    _attest_connected(session, sender.id or 0, org_id, unique)
    return sender


@dataclass(frozen=True, slots=True)
class AddressState:
    """A sender's address with its attestation, as its organization sees it."""

    address: str
    attested_via: str | None
    attested_at: datetime | None
    carrier: str | None
    withdrawn_at: datetime | None
    suspended_until: datetime | None


def address_states(session: Session, sender_ids: list[int]) -> dict[int, list[AddressState]]:
    """Return each sender's addresses with their attestation, in address order."""
    out: dict[int, list[AddressState]] = {}
    if not sender_ids:
        return out
    rows = session.execute(
        select(col(SenderAddress.sender_id), col(SenderAddress.address),
               col(SenderAddress.attested_via), col(SenderAddress.attested_at),
               col(Organization.slug), col(SenderAddress.withdrawn_at),
               col(SenderAddress.suspended_until))
        .outerjoin(Organization, col(Organization.id) == SenderAddress.carrier_id)
        .where(col(SenderAddress.sender_id).in_(sender_ids))
        .order_by(col(SenderAddress.address))
    )  # fmt: skip
    for sender_id, address, via, attested, carrier, withdrawn, suspended in rows:
        state = AddressState(address, via, attested, carrier, withdrawn, suspended)
        out.setdefault(sender_id, []).append(state)
    return out


def list_senders(session: Session, org_id: int) -> list[tuple[Sender, list[str]]]:
    """Return an organization's senders with their addresses."""
    senders = session.scalars(
        select(Sender).where(col(Sender.organization_id) == org_id).order_by(col(Sender.code))
    ).all()
    addresses: dict[int, list[str]] = {}
    if senders:
        rows = session.execute(
            select(col(SenderAddress.sender_id), col(SenderAddress.address)).where(
                col(SenderAddress.sender_id).in_([s.id for s in senders])
            )
        )
        for sender_id, address in rows:
            addresses.setdefault(sender_id, []).append(address)
    return [(s, sorted(addresses.get(s.id or 0, []))) for s in senders]


SENDER_FINGERPRINT = fingerprint(
    Sender.id,
    Sender.code,
    Sender.name,
    Sender.category,
    Sender.organization_id,
    Sender.suspended_until,
    Organization.suspended_until,
    Organization.slug,
)
DELEGATION_FINGERPRINT = fingerprint(Delegation.id, Delegation.scopes, Delegation.expires_at)
# The lookup of a sender with its owner; registry/copies.py verifies copies of
# its result with its SENDER_FINGERPRINT (and of the grants with DELEGATION_FINGERPRINT).
SENDER_LOOKUP = select(
    col(Sender.id),
    col(Sender.code),
    col(Sender.name),
    col(Sender.category),
    col(Sender.organization_id),
    col(Sender.suspended_until),
    col(Organization.suspended_until),
    col(Organization.slug),
    SENDER_FINGERPRINT,
).join(Organization, col(Organization.id) == Sender.organization_id)
_BY_CODE = SENDER_LOOKUP.where(col(Sender.code) == bindparam("code"))
_BY_ADDRESS = SENDER_LOOKUP.join(
    SenderAddress,
    col(SenderAddress.sender_id) == Sender.id,
).where(col(SenderAddress.address) == bindparam("address"))
GRANTS_LOOKUP = (
    select(col(Delegation.scopes), col(Delegation.expires_at), DELEGATION_FINGERPRINT)
    .join(DelegationSender, col(DelegationSender.delegation_id) == Delegation.id)
    .where(
        and_(
            col(DelegationSender.agent_id) == bindparam("agent"),
            col(DelegationSender.sender_id) == bindparam("sender"),
            col(Delegation.revoked_at).is_(None),
        )
    )
)


def _suspended(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now


def _ref(row: tuple[Any, ...], now: datetime, agent: Caller | None = None) -> SenderRef:
    return SenderRef(
        fingerprint=(row[8],),
        id=row[0],
        code=row[1],
        name=row[2],
        category=row[3],
        organization_id=row[4],
        suspended=_suspended(row[5], now) or _suspended(row[6], now),
        org_slug=row[7],
        agent_id=agent.org_id if agent is not None else None,
        agent_slug=agent.slug if agent is not None else None,
    )


SenderRows = tuple[tuple[Any, ...], list[tuple[Any, ...]]]


def lookup_sender(session: Session, caller: Caller, code: str) -> SenderRows:
    """Read the sender ``code`` and, if the caller does not own it, the caller's grants for it."""
    conn = session.connection()
    row = conn.execute(_BY_CODE, {"code": code}).first()
    if row is None:
        raise UnknownSender(f"no sender with code {code!r}", field="sender")
    if row[4] == caller.org_id:
        return tuple(row), []
    grants = conn.execute(GRANTS_LOOKUP, {"agent": caller.org_id, "sender": row[0]}).all()
    return tuple(row), [tuple(g) for g in grants]


def grant_sender(
    rows: SenderRows, caller: Caller, code: str, scope: str, now: datetime
) -> SenderRef:
    """Return the sender as the caller may use it for ``scope`` at ``now``; else Forbidden."""
    row, grants = rows
    if row[4] == caller.org_id:
        return _ref(row, now)
    for scopes, expires_at, _ in grants:
        if scope in scopes.split(",") and (expires_at is None or expires_at > now):
            ref = replace(
                _ref(row, now, agent=caller),
                fingerprint=(row[8], *sorted(g[2] for g in grants)),
            )
            # A suspended agent can act for nobody.
            return replace(ref, suspended=True) if caller.suspended(now) else ref
    raise Forbidden(f"sender {code!r} belongs to another organization", field="sender")


def sender_as_owner(session: Session, code: str, now: datetime) -> SenderRef:
    """Return sender ``code`` as its own organization uses it (the operator's CLI); raise UnknownSender."""
    row = session.connection().execute(_BY_CODE, {"code": code}).first()
    if row is None:
        raise UnknownSender(f"no sender with code {code!r}", field="sender")
    return _ref(tuple(row), now)


def resolve_sender(
    session: Session, caller: Caller, code: str, scope: str, now: datetime
) -> SenderRef:
    """Return the sender ``code`` if the caller owns it or holds a live delegation for ``scope``.

    The owner's call is one indexed query; a delegated call adds exactly one more.
    """
    return grant_sender(lookup_sender(session, caller, code), caller, code, scope, now)


def sender_by_address(session: Session, address: str, now: datetime) -> SenderRef:
    """Return the sender that contacts people from ``address``; raise UnknownAddress."""
    row = session.execute(_BY_ADDRESS, {"address": clean_address(address)}).first()
    if row is None:
        raise UnknownAddress(f"no sender uses the address {address!r}", field="to")
    return _ref(row, now)


def carrier_of(session: Session, address: str) -> int | None:
    """Return the carrier attesting an address now (its live connection), or None."""
    carrier: int | None = session.scalar(
        select(col(SenderAddress.carrier_id)).where(
            col(SenderAddress.address) == address, col(SenderAddress.withdrawn_at).is_(None)
        )
    )
    return carrier


def code_of(session: Session, sender_id: int) -> str:
    """Return a sender's code."""
    code = session.scalar(select(col(Sender.code)).where(col(Sender.id) == sender_id))
    if code is None:
        raise UnknownSender(f"no sender {sender_id}", field="sender")
    return str(code)


def find_sender(session: Session, query: str, now: datetime) -> SenderRef:
    """Find the sender a holder means: by code, by the number or port it used, or by name."""
    text = query.strip()
    if not text:
        raise UnknownSender("tell us the sender's name, code or number", field="query")
    row = session.execute(_BY_CODE, {"code": text}).first()
    if row is None:
        row = session.execute(_BY_ADDRESS, {"address": clean_address(text)}).first()
    if row is None:
        rows = session.execute(
            SENDER_LOOKUP.where(col(Sender.name).ilike(f"%{text}%")).limit(2)
        ).all()
        if len(rows) == 1:
            row = rows[0]
        elif len(rows) > 1:
            raise UnknownSender("several senders match; use the code or the number", field="query")
    if row is None:
        raise UnknownSender(f"no sender matches {text!r}", field="query")
    return _ref(row, now)


def sender_by_reference(session: Session, reference: str, now: datetime) -> SenderRef | None:
    """Return the sender a holder names in an SMS to the registry: its code or an address."""
    code = reference.strip()
    row = session.execute(_BY_ADDRESS, {"address": clean_address(code)}).first()
    if row is None:
        by_code = SENDER_LOOKUP.where(func.lower(col(Sender.code)) == code.lower())
        row = session.execute(by_code.limit(1)).first()
    return _ref(row, now) if row is not None else None


def optout_reach(session: Session, sender: SenderRef, now: datetime) -> list[SenderRef]:
    """Return every sender a STOPALL forwarded for ``sender`` refuses: its organization's.

    An owner's port speaks for all of its organization's senders; an agent's,
    only for those of the principal's senders it holds a live ``optout`` grant
    for (its scopes bound what it may say, even a refusal).
    """
    query = SENDER_LOOKUP.where(col(Sender.organization_id) == sender.organization_id)
    if sender.agent_id is not None:
        granted = (
            select(col(DelegationSender.sender_id))
            .join(Delegation, col(Delegation.id) == DelegationSender.delegation_id)
            .where(
                col(DelegationSender.agent_id) == sender.agent_id,
                col(Delegation.revoked_at).is_(None),
                or_(col(Delegation.expires_at).is_(None), col(Delegation.expires_at) > now),
                col(Delegation.scopes).contains("optout"),
            )
        )
        query = query.where(col(Sender.id).in_(granted))
    rows = session.execute(query.order_by(col(Sender.id))).all()
    return [
        replace(_ref(tuple(row), now), agent_id=sender.agent_id, agent_slug=sender.agent_slug)
        for row in rows
    ]


def sender_by_id(session: Session, sender_id: int, now: datetime) -> SenderRef:
    """Return a sender by its id; raise UnknownSender."""
    row = session.execute(SENDER_LOOKUP.where(col(Sender.id) == sender_id)).first()
    if row is None:
        raise UnknownSender(f"no sender {sender_id}", field="sender")
    return _ref(tuple(row), now)
