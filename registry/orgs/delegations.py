"""Delegations: a principal lets an agent (call center, SMS port) act for some of its senders."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from registry.errors import Conflict, Forbidden, NotFound, ValidationFailed
from registry.orgs import filings
from registry.orgs.filings import Filing
from registry.orgs.models import (
    FILING_REQUIRED,
    SCOPES,
    Delegation,
    DelegationSender,
    Organization,
)
from registry.orgs.services import ensure_id_not_listed, ensure_not_listed
from registry.senders.models import Sender
from registry.timeutil import utcnow


def grant(
    session: Session,
    principal_id: int,
    agent_slug: str,
    sender_codes: list[str],
    scopes: list[str],
    expires_at: datetime | None = None,
    filing: Filing | None = None,
    region: str = "CN",
) -> Delegation:
    """Let ``agent_slug`` act for the principal's ``sender_codes`` within ``scopes``.

    A delegation to a call center or an SMS port company (``FILING_REQUIRED``)
    must carry its business filing (业务备案, registry/orgs/filings.py); any
    other may.
    """
    agent = session.scalar(select(Organization).where(col(Organization.slug) == agent_slug))
    if agent is None:
        raise ValidationFailed(f"no organization {agent_slug!r}", field="agent")
    if agent.id == principal_id:
        raise ValidationFailed("an organization cannot delegate to itself", field="agent")
    ensure_id_not_listed(session, principal_id, utcnow(), "delegate senders")
    ensure_not_listed(agent, utcnow(), "be granted delegations")
    if filing is None and agent.kind in FILING_REQUIRED:
        raise ValidationFailed(
            f"{agent.slug} is a {agent.kind.replace('_', ' ')}: a delegation to it must carry "
            "the business filing (业务备案): business name and type, outbound addresses, "
            "targets, content, contact",
            field="filing",
        )
    chosen = sorted(set(scopes))
    if not chosen or any(s not in SCOPES for s in chosen):
        raise ValidationFailed(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}", field="scopes"
        )
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    codes = sorted(set(sender_codes))
    if not codes:
        raise ValidationFailed("name at least one sender", field="senders")
    senders = session.execute(
        select(col(Sender.id), col(Sender.code), col(Sender.organization_id)).where(
            col(Sender.code).in_(codes)
        )
    ).all()
    found = {code for _id, code, _org in senders}
    missing = [c for c in codes if c not in found]
    if missing:
        raise ValidationFailed(f"unknown senders: {', '.join(missing)}", field="senders")
    foreign = [code for _id, code, org in senders if org != principal_id]
    if foreign:
        raise Forbidden(
            f"only the owner may delegate these senders: {', '.join(foreign)}", field="senders"
        )
    delegation = Delegation(
        principal_id=principal_id,
        agent_id=agent.id,  # type: ignore[arg-type]
        scopes=",".join(chosen),
        expires_at=expires_at,
    )
    session.add(delegation)
    session.flush()
    for sender_id, _code, _org in senders:
        session.add(
            DelegationSender(delegation_id=delegation.id, sender_id=sender_id, agent_id=agent.id)  # type: ignore[arg-type]
        )
    session.flush()
    if filing is not None:
        filings.save(session, delegation, filing, region)
    return delegation


def revoke(session: Session, principal_id: int, delegation_id: int) -> Delegation:
    """Revoke a delegation; the agent's next call is refused."""
    delegation = session.get(Delegation, delegation_id)
    if delegation is None:
        raise NotFound(f"no delegation {delegation_id}")
    if delegation.principal_id != principal_id:
        raise Forbidden("only the principal may revoke a delegation")
    return _revoke(delegation)


def revoke_by_regulator(session: Session, delegation_id: int) -> Delegation:
    """Revoke any delegation, as the regulator; the agent's next call is refused."""
    delegation = session.get(Delegation, delegation_id)
    if delegation is None:
        raise NotFound(f"no delegation {delegation_id}")
    return _revoke(delegation)


def _revoke(delegation: Delegation) -> Delegation:
    if delegation.revoked_at is not None:
        raise Conflict("the delegation is already revoked")
    delegation.revoked_at = utcnow()
    return delegation


def state_of(delegation: Delegation, now: datetime) -> str:
    """Return ``active``, ``revoked`` or ``expired`` (a revoked delegation is revoked, expired or not)."""
    if delegation.revoked_at is not None:
        return "revoked"
    if delegation.expires_at is not None and delegation.expires_at <= now:
        return "expired"
    return "active"


def describe(session: Session, delegations: list[Delegation]) -> list[dict[str, object]]:
    """Return delegations as plain data: principal, agent, senders, scopes, times."""
    if not delegations:
        return []
    ids = [d.id for d in delegations]
    rows = session.execute(
        select(col(DelegationSender.delegation_id), col(Sender.code))
        .join(Sender, col(Sender.id) == col(DelegationSender.sender_id))
        .where(col(DelegationSender.delegation_id).in_(ids))
    ).all()
    codes: dict[int, list[str]] = {}
    for delegation_id, code in rows:
        codes.setdefault(delegation_id, []).append(code)
    org_ids = {d.principal_id for d in delegations} | {d.agent_id for d in delegations}
    orgs = {
        org_id: (slug, kind)
        for org_id, slug, kind in session.execute(
            select(col(Organization.id), col(Organization.slug), col(Organization.kind)).where(
                col(Organization.id).in_(org_ids)
            )
        )
    }
    filed = filings.of(session, [d.id for d in delegations if d.id is not None])
    now = utcnow()
    return [
        {
            "id": d.id,
            "principal": orgs[d.principal_id][0],
            "agent": orgs[d.agent_id][0],
            "agent_kind": orgs[d.agent_id][1],
            "filing": filed.get(d.id or 0),
            "filing_required": orgs[d.agent_id][1] in FILING_REQUIRED,
            "senders": sorted(codes.get(d.id or 0, [])),
            "scopes": d.scopes.split(","),
            "expires_at": d.expires_at,
            "revoked_at": d.revoked_at,
            "created_at": d.created_at,
            "active": state_of(d, now) == "active",
            "state": state_of(d, now),
        }
        for d in delegations
    ]


def list_for(session: Session, org_id: int) -> list[Delegation]:
    """Return the delegations an organization granted or received, newest first."""
    return list(
        session.scalars(
            select(Delegation)
            .where((col(Delegation.principal_id) == org_id) | (col(Delegation.agent_id) == org_id))
            .order_by(col(Delegation.id).desc())
        )
    )


def _state_clause(state: str, now: datetime) -> ColumnElement[bool]:
    revoked = col(Delegation.revoked_at).is_not(None)
    expired = and_(
        col(Delegation.revoked_at).is_(None),
        col(Delegation.expires_at).is_not(None),
        col(Delegation.expires_at) <= now,
    )
    if state == "revoked":
        return revoked
    if state == "expired":
        return expired
    if state == "active":
        return and_(
            col(Delegation.revoked_at).is_(None),
            or_(col(Delegation.expires_at).is_(None), col(Delegation.expires_at) > now),
        )
    raise ValidationFailed("state must be active, revoked or expired", field="state")


def search(
    session: Session,
    *,
    principal: str | None = None,
    agent: str | None = None,
    state: str | None = None,
    now: datetime | None = None,
    limit: int = 500,
) -> list[Delegation]:
    """Return delegations between any organizations, newest first (the regulator's view).

    ``principal`` and ``agent`` are organization slugs; ``state`` is
    ``active``, ``revoked`` or ``expired``.
    """
    query = select(Delegation).order_by(col(Delegation.id).desc()).limit(limit)
    if principal:
        owner = aliased(Organization)
        on_owner = col(owner.id) == col(Delegation.principal_id)
        query = query.join(owner, on_owner).where(col(owner.slug) == principal)
    if agent:
        acting = aliased(Organization)
        on_agent = col(acting.id) == col(Delegation.agent_id)
        query = query.join(acting, on_agent).where(col(acting.slug) == agent)
    if state:
        query = query.where(_state_clause(state, now or utcnow()))
    return list(session.scalars(query))
