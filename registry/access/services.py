"""Access relations and attested addresses: connect, withdraw, prove by code, see the chain.

Who may say that a sender may present an address (SPEC §8): the carrier that
owns or connects it. A carrier's live connection of an address to an
organization attests that organization's sender address at once (whether the
sender registered it before or after); withdrawing the connection takes the
address out of use from the next check on. An E.164 address inside a number
range may be connected only by the carrier holding that range
(``not_your_number`` for any other); an address outside every range (an SMS
port, a short code, a number in no registered range) may be connected by the
carrier that connects it, or proven by the sender with a one-time code texted
to it (numbers only: a port cannot read a text).

No two organizations hold the same address: ``sender_address.address`` is
unique, and so is a live connection's. An unattested claim does not lock the
real holder out: when a carrier connects the address for another
organization, the claim is released.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry import phones
from registry.access.models import KINDS, AddressProof, Connection
from registry.complaints.models import Complaint
from registry.config import Settings
from registry.consent.otp import CODE_TTL, MAX_TRIES, hash_code
from registry.errors import (
    Conflict,
    Forbidden,
    InvalidPhoneError,
    NotFound,
    UnknownAddress,
    ValidationFailed,
)
from registry.numbers.ranges import NotYourNumber, holder_of
from registry.orgs.models import Organization
from registry.sanctions.models import Sanction
from registry.senders.models import Sender, SenderAddress
from registry.senders.services import attest, may_present
from registry.sms import services as sms
from registry.timeutil import utcnow

MAX_ADDRESSES = 100


def clean(raw: Any, region: str, field: str) -> str:
    """Return an address as stored (``phones.to_address``); raise InvalidPhoneError on ``field``."""
    try:
        return phones.to_address(raw, region)
    except phones.InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field=field) from exc


def _range_holder(session: Session, address: str) -> tuple[int, str] | None:
    """Return (carrier id, prefix) of the range holding an E.164 address, or None."""
    if not address.startswith("+"):
        return None
    found = holder_of(session, address)
    return (found.organization_id, found.prefix) if found is not None else None


def _slug(session: Session, org_id: int) -> str:
    return str(session.scalar(select(col(Organization.slug)).where(col(Organization.id) == org_id)))


def connect(
    session: Session,
    carrier_id: int,
    organization: str,
    kind: str,
    addresses: Sequence[Any],
    region: str,
    by: str,
) -> list[Connection]:
    """Record that the carrier connects ``organization`` at each address; attest its senders'.

    All or nothing: one address that is not the carrier's to connect, or that
    another organization holds, refuses the whole request.
    """
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not addresses:
        raise ValidationFailed("name at least one address", field="addresses")
    if len(addresses) > MAX_ADDRESSES:
        raise ValidationFailed(f"at most {MAX_ADDRESSES} addresses at once", field="addresses")
    org = session.scalar(select(Organization).where(col(Organization.slug) == organization))
    if org is None:
        raise NotFound(f"no organization {organization!r}", field="organization")
    if org.role in ("carrier", "regulator", "gateway"):
        raise ValidationFailed(
            f"{org.slug} is a {org.role}: a carrier connects senders, call centers "
            "and SMS port companies",
            field="organization",
        )
    cleaned = [clean(a, region, f"addresses.{i}") for i, a in enumerate(addresses)]
    if len(set(cleaned)) != len(cleaned):
        raise ValidationFailed("an address is named twice", field="addresses")
    claims: list[int] = []  # unattested claims of other organizations, released below
    for i, address in enumerate(cleaned):
        field = f"addresses.{i}"
        held = _range_holder(session, address)
        if held is not None and held[0] != carrier_id:
            raise NotYourNumber(
                f"{address} is in the range {held[1]} of {_slug(session, held[0])}: "
                "only that carrier attests it",
                field=field,
            )
        live = session.scalar(
            select(Connection).where(
                col(Connection.address) == address, col(Connection.withdrawn_at).is_(None)
            )
        )
        if live is not None:
            whose = "you" if live.carrier_id == carrier_id else _slug(session, live.carrier_id)
            raise Conflict(
                f"{address} is already connected by {whose} for "
                f"{_slug(session, live.organization_id)} (connection {live.id}); "
                "withdraw that connection first",
                field=field,
            )
        row: Any = session.execute(
            select(col(SenderAddress.id), col(SenderAddress.attested_at), col(Sender.id),
                   col(Sender.organization_id), col(Sender.code))
            .join(Sender, col(Sender.id) == SenderAddress.sender_id)
            .where(col(SenderAddress.address) == address)
        ).first()  # fmt: skip
        if row is not None and not may_present(session, org.id or 0, row[2], row[3]):
            if row[1] is not None:
                raise Conflict(
                    f"{address} is held by sender {row[4]} of {_slug(session, row[3])}, "
                    "attested; no address belongs to two organizations",
                    field=field,
                )
            claims.append(row[0])
    now = utcnow()
    made = [
        Connection(
            carrier_id=carrier_id,
            organization_id=org.id or 0,
            kind=kind,
            address=address,
            created_by=by,
            created_at=now,
        )
        for address in cleaned
    ]
    try:
        # One savepoint: a refused connection leaves the claims it would replace.
        with session.begin_nested():
            if claims:
                # A claim nobody attested does not lock the real holder out (issue 15).
                session.execute(delete(SenderAddress).where(col(SenderAddress.id).in_(claims)))
            session.add_all(made)
            session.flush()
    except IntegrityError as exc:  # the same address, connected at the same moment
        raise Conflict("an address was connected at the same moment", field="addresses") from exc
    for c in made:
        attest_registered(session, c, now)
    session.flush()
    return made


def attest_registered(session: Session, connection: Connection, now: datetime) -> None:
    """Attest the sender address the connection covers, if one is registered."""
    row = session.execute(
        select(SenderAddress, col(Sender.organization_id))
        .join(Sender, col(Sender.id) == SenderAddress.sender_id)
        .where(col(SenderAddress.address) == connection.address)
    ).first()
    if row is None:
        return
    found, owner = row
    if may_present(session, connection.organization_id, found.sender_id, owner):
        attest(found, connection, now)


def withdraw(
    session: Session, carrier_id: int | None, connection_id: int, by: str, reason: str = ""
) -> Connection:
    """Withdraw a connection (``carrier_id`` None: the regulator); its address is unusable at once."""
    row = session.get(Connection, connection_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no connection {connection_id}")
    if carrier_id is not None and row.carrier_id != carrier_id:
        raise Forbidden("that connection was recorded by another carrier")
    if row.withdrawn_at is not None:
        raise Conflict(f"connection {connection_id} is already withdrawn")
    if len(reason) > 500:
        raise ValidationFailed("the reason is longer than 500 characters", field="reason")
    now = utcnow()
    row.withdrawn_at, row.withdrawn_by, row.withdrawal_reason = now, by, reason.strip() or None
    session.execute(
        update(SenderAddress)
        .where(col(SenderAddress.connection_id) == connection_id)
        .values(withdrawn_at=now)
    )
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """A connection as lists show it, with the organizations' slugs and the address's sender."""

    id: int
    carrier: str
    organization: str
    kind: str
    address: str
    sender: str | None
    created_at: datetime
    withdrawn_at: datetime | None


def list_connections(
    session: Session, carrier_id: int | None = None, include_withdrawn: bool = False
) -> list[ConnectionRow]:
    """Return connections, newest first; with ``carrier_id``, only that carrier's."""
    carrier, org = aliased(Organization), aliased(Organization)
    query = (
        select(Connection, col(carrier.slug), col(org.slug), col(Sender.code))
        .join(carrier, col(carrier.id) == Connection.carrier_id)
        .join(org, col(org.id) == Connection.organization_id)
        .outerjoin(SenderAddress, col(SenderAddress.connection_id) == Connection.id)
        .outerjoin(Sender, col(Sender.id) == SenderAddress.sender_id)
        .order_by(col(Connection.id).desc())
    )
    if carrier_id is not None:
        query = query.where(col(Connection.carrier_id) == carrier_id)
    if not include_withdrawn:
        query = query.where(col(Connection.withdrawn_at).is_(None))
    return [
        ConnectionRow(c.id or 0, cs, os_, c.kind, c.address, code, c.created_at, c.withdrawn_at)
        for c, cs, os_, code in session.execute(query)
    ]


# --- proof by code, for addresses outside every range -------------------------------------


def _own_address(session: Session, sender_id: int, address: str) -> SenderAddress:
    found = session.scalar(
        select(SenderAddress).where(
            col(SenderAddress.sender_id) == sender_id, col(SenderAddress.address) == address
        )
    )
    if found is None:
        raise UnknownAddress(
            f"{address} is not an address of this sender; register it first", field="address"
        )
    return found


def request_proof(
    session: Session, settings: Settings, sender_id: int, sender_name: str, raw: str
) -> tuple[AddressProof, str]:
    """Text a one-time code to a sender's address outside every range; return the proof and code."""
    address = clean(raw, settings.default_region, "address")
    found = _own_address(session, sender_id, address)
    if found.attested_at is not None and found.withdrawn_at is None:
        raise Conflict(f"{address} is already attested", field="address")
    if not address.startswith("+"):
        raise ValidationFailed(
            f"{address} is an SMS port or short code: it cannot read a code; "
            "the carrier that connects it attests it",
            field="address",
        )
    held = _range_holder(session, address)
    if held is not None:
        raise NotYourNumber(
            f"{address} is in the range {held[1]} of {_slug(session, held[0])}: "
            "that carrier attests it, not a code",
            field="address",
        )
    proof_id = secrets.token_hex(12)
    code = f"{secrets.randbelow(1_000_000):06d}"
    proof = AddressProof(
        id=proof_id,
        sender_id=sender_id,
        address=address,
        code_hash=hash_code(settings, proof_id, code),
        expires_at=utcnow() + CODE_TTL,
    )
    session.add(proof)
    session.flush()
    sms.send(
        session,
        address,
        f"【Anning】验证码 {code}：{sender_name[:60]} 申请把本号码登记为其主叫号码。"
        "如非您本人申请，请忽略。10 分钟内有效。",
        "address_proof",
    )
    return proof, code


def confirm_proof(
    session: Session, sender_id: int, settings: Settings, proof_id: str, code: str
) -> SenderAddress | ValidationFailed:
    """Check the code typed back; on success the address is attested ``via`` code.

    A wrong code is a counted try: written, and *returned* for the caller to
    commit before it answers with it. Every refusal it raises writes nothing.
    """
    proof = session.get(AddressProof, proof_id, with_for_update=True)
    if proof is None or proof.sender_id != sender_id:
        raise NotFound("no such address proof for this sender")
    if proof.confirmed_at is not None:
        raise Conflict("the code was already used")
    if proof.attempts >= MAX_TRIES:
        raise Conflict("too many wrong codes; the proof is locked, start a new one")
    if proof.expires_at <= utcnow():
        raise Conflict("the code has expired; start a new proof")
    if not hmac.compare_digest(proof.code_hash, hash_code(settings, proof.id, code.strip())):
        proof.attempts += 1
        session.flush()
        left = MAX_TRIES - proof.attempts
        return ValidationFailed(
            f"wrong code; {left} tries left" if left else "wrong code; the proof is now locked",
            field="code",
        )
    found = _own_address(session, sender_id, proof.address)
    now = utcnow()
    proof.confirmed_at = now
    found.attested_at, found.attested_via, found.withdrawn_at = now, "code", None
    found.carrier_id = found.connection_id = None
    session.flush()
    return found


# --- the chain, and what a carrier sees -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    """Who answers for contact from an address: the sender, its owner, the agent, the carrier."""

    address: str
    sender_id: int
    sender_code: str
    sender_name: str
    merchant: str  # the owner organization's slug
    merchant_name: str
    agent: str | None  # the organization connected, when it is not the owner (a call center)
    agent_name: str | None
    agent_id: int | None
    carrier_id: int | None
    carrier: str | None
    carrier_name: str | None
    usable: bool  # attested and not withdrawn


def chain_of(session: Session, address: str) -> Chain | None:
    """Return the chain behind an address (one query), or None if no sender registered it."""
    owner, agent, carrier = aliased(Organization), aliased(Organization), aliased(Organization)
    row: Any = session.execute(
        select(
            col(Sender.id), col(Sender.code), col(Sender.name), col(owner.slug), col(owner.name),
            col(agent.slug), col(agent.name), col(SenderAddress.carrier_id), col(carrier.slug),
            col(SenderAddress.attested_at), col(SenderAddress.withdrawn_at), col(owner.id),
            col(agent.id), col(carrier.name),
        )
        .select_from(SenderAddress)
        .join(Sender, col(Sender.id) == SenderAddress.sender_id)
        .join(owner, col(owner.id) == Sender.organization_id)
        .outerjoin(Connection, col(Connection.id) == SenderAddress.connection_id)
        .outerjoin(agent, col(agent.id) == Connection.organization_id)
        .outerjoin(carrier, col(carrier.id) == SenderAddress.carrier_id)
        .where(col(SenderAddress.address) == address)
    ).first()  # fmt: skip
    if row is None:
        return None
    is_agent = row[12] is not None and row[12] != row[11]
    return Chain(
        address=address,
        sender_id=row[0],
        sender_code=row[1],
        sender_name=row[2],
        merchant=row[3],
        merchant_name=row[4],
        agent=row[5] if is_agent else None,
        agent_name=row[6] if is_agent else None,
        agent_id=row[12] if is_agent else None,
        carrier_id=row[7],
        carrier=row[8],
        carrier_name=row[13],
        usable=row[9] is not None and row[10] is None,
    )


def connected_orgs(carrier_id: int) -> Any:
    """Return a subquery of the organizations the carrier connects (a live connection)."""
    return select(col(Connection.organization_id)).where(
        col(Connection.carrier_id) == carrier_id, col(Connection.withdrawn_at).is_(None)
    )


MAX_PAGE = 1000


def complaints_for_carrier(
    session: Session, carrier_id: int, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Return complaints about organizations the carrier connects, or naming it, by id after ``after``.

    The holder's number is not among them: the carrier acts on its contract
    with the organization, and learns nothing about holders it does not serve.
    """
    owner, agent, carrier = aliased(Organization), aliased(Organization), aliased(Organization)
    mine = connected_orgs(carrier_id)
    rows = session.execute(
        select(
            col(Complaint.id), col(Complaint.address), col(Sender.code), col(owner.slug),
            col(agent.slug), col(carrier.slug), col(Complaint.channel),
            col(Complaint.contacted_at), col(Complaint.status), col(Complaint.created_at),
        )
        .outerjoin(Sender, col(Sender.id) == Complaint.sender_id)
        .outerjoin(owner, col(owner.id) == Complaint.organization_id)
        .outerjoin(agent, col(agent.id) == Complaint.agent_id)
        .outerjoin(carrier, col(carrier.id) == Complaint.carrier_id)
        .where(
            col(Complaint.id) > after,
            or_(
                col(Complaint.carrier_id) == carrier_id,
                col(Complaint.organization_id).in_(mine),
                col(Complaint.agent_id).in_(mine),
            ),
        )
        .order_by(col(Complaint.id))
        .limit(max(1, min(limit, MAX_PAGE)))
    ).all()  # fmt: skip
    keys = ("id", "address", "sender", "organization", "agent", "carrier", "channel",
            "contacted_at", "status", "created_at")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]


def sanctions_for_carrier(
    session: Session, carrier_id: int, after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Return sanctions on organizations the carrier connects, or naming it, by id after ``after``."""
    mine = connected_orgs(carrier_id)
    rows = session.execute(
        select(
            col(Sanction.id), col(Sanction.kind), col(Organization.slug), col(Sender.code),
            col(Sanction.address), col(Sanction.reason), col(Sanction.starts_at),
            col(Sanction.ends_at), col(Sanction.lifted_at),
        )
        .join(Organization, col(Organization.id) == Sanction.organization_id)
        .outerjoin(Sender, col(Sender.id) == Sanction.sender_id)
        .where(
            col(Sanction.id) > after,
            col(Sanction.kind) != "flag",  # a flag is the regulator's own note, not a measure
            or_(col(Sanction.carrier_id) == carrier_id, col(Sanction.organization_id).in_(mine)),
        )
        .order_by(col(Sanction.id))
        .limit(max(1, min(limit, MAX_PAGE)))
    ).all()  # fmt: skip
    keys = ("id", "kind", "organization", "sender", "address", "reason", "starts_at",
            "ends_at", "lifted_at")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]
