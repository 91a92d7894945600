"""Organizations and API keys: create, authenticate, revoke."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.database.statements import fingerprint
from registry.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from registry.orgs.models import KINDS, ROLES, ApiKey, Organization
from registry.senders.models import Sender
from registry.timeutil import utcnow

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
KEY_PREFIX = "ann_"


@dataclass(frozen=True, slots=True)
class Caller:
    """The organization behind an API key, as the request sees it."""

    org_id: int
    slug: str
    name: str
    role: str
    suspended_until: datetime | None
    key_prefix: str = ""
    fingerprint: str = ""  # of the key and organization rows (registry/copies.py)

    def suspended(self, now: datetime) -> bool:
        """Tell whether the organization is under a suspension at ``now``."""
        return self.suspended_until is not None and self.suspended_until > now


MAX_REGION = 64


def clean_credit_code(raw: str | None) -> str | None:
    """Return a unified social credit code (统一社会信用代码) checked, or None when blank.

    GB 32100-2015: 18 characters, the first eight digits (registration
    department, type, region), the rest from ``0-9A-HJ-NPQRTUWXY``, the last a
    check character (weights 3^i mod 31, sum mod 31). python-stdnum's ``cn.uscc``.
    """
    from stdnum.cn import uscc
    from stdnum.exceptions import ValidationError

    text = (raw or "").strip().upper().replace(" ", "").replace("-", "")
    if not text:
        return None
    try:
        return str(uscc.validate(text))
    except ValidationError as exc:
        message = {
            "InvalidLength": "the credit code must have 18 characters",
            "InvalidFormat": "the credit code starts with 8 digits; then only 0-9 and "
            "A-Z without I, O, S, V, Z",
            "InvalidChecksum": "the credit code's check character does not match (GB 32100-2015)",
        }.get(type(exc).__name__, "not a unified social credit code")
        raise ValidationFailed(message, field="credit_code") from exc


def _clean_region(raw: str | None) -> str | None:
    region = (raw or "").strip()
    if len(region) > MAX_REGION:
        raise ValidationFailed(f"the region is longer than {MAX_REGION} characters", field="region")
    return region or None


def _code_free(session: Session, code: str | None, org_id: int | None = None) -> None:
    if code is None:
        return
    owner = session.scalar(
        select(col(Organization.slug)).where(
            col(Organization.credit_code) == code, col(Organization.id) != (org_id or 0)
        )
    )
    if owner is not None:
        raise Conflict(f"credit code {code} belongs to {owner}", field="credit_code")


def set_identity(
    session: Session, org: Organization, credit_code: str | None, region: str | None
) -> Organization:
    """Set an organization's credit code and region (blank clears them)."""
    code = clean_credit_code(credit_code)
    place = _clean_region(region)
    _code_free(session, code, org.id)
    org.credit_code = code
    org.region = place
    session.flush()
    return org


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", field="kind")


def set_kind(session: Session, org: Organization, kind: str) -> Organization:
    """Say what an organization is in the chain (merchant, call center, SMS port...).

    A call center or SMS port company must file the business of every
    delegation it is granted from then on (registry/orgs/filings.py); the
    delegations it already holds are shown to the regulator as unfiled.
    """
    _check_kind(kind)
    org.kind = kind
    session.flush()
    return org


def ensure_not_listed(org: Organization, now: datetime, what: str) -> None:
    """Refuse ``what`` to an organization on the credit list (一处违规、处处受限)."""
    if org.listed_until is not None and org.listed_until > now:
        raise Forbidden(
            f"{org.slug} is on the credit list until {org.listed_until:%Y-%m-%d}: "
            f"it cannot {what} while listed",
            field="organization",
        )


def ensure_id_not_listed(session: Session, org_id: int, now: datetime, what: str) -> None:
    """``ensure_not_listed`` by organization id."""
    org = session.get(Organization, org_id)
    if org is not None:
        ensure_not_listed(org, now, what)


def create_org(
    session: Session,
    slug: str,
    name: str,
    role: str = "sender",
    credit_code: str | None = None,
    region: str | None = None,
    kind: str = "merchant",
) -> Organization:
    """Create an organization; the slug is its permanent, public handle."""
    _check_kind(kind)
    code = clean_credit_code(credit_code)
    place = _clean_region(region)
    if not SLUG.fullmatch(slug):
        raise ValidationFailed("slug: lowercase letters, digits and dashes, 2-63", field="slug")
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", field="role")
    if (
        session.scalar(select(col(Organization.id)).where(col(Organization.slug) == slug))
        is not None
    ):
        raise Conflict(f"organization {slug!r} exists", field="slug")
    _code_free(session, code)
    org = Organization(
        slug=slug, name=name.strip() or slug, role=role, credit_code=code, region=place, kind=kind
    )
    session.add(org)
    session.flush()
    return org


def get_org(session: Session, slug: str) -> Organization:
    """Return the organization with this slug or raise NotFound."""
    org = session.scalar(select(Organization).where(col(Organization.slug) == slug))
    if org is None:
        raise NotFound(f"no organization {slug!r}")
    return org


def _hash(secret: str) -> str:
    # API keys carry 192 random bits, so a fast hash is enough: there is nothing
    # to brute-force, and a slow hash would cost every check a millisecond.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, org: Organization, name: str = "") -> tuple[ApiKey, str]:
    """Create an API key; return the row and the key, which is never shown again."""
    ensure_not_listed(org, utcnow(), "get new API keys")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(organization_id=org.id, prefix=prefix, key_hash=_hash(key), name=name)  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row, key


def revoke_key(session: Session, prefix: str) -> ApiKey:
    """Revoke a key at once."""
    row = session.scalar(select(ApiKey).where(col(ApiKey.prefix) == prefix))
    if row is None:
        raise NotFound(f"no key {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


# Changes whenever the key is revoked (the row then no longer matches) or the
# organization's role, name or suspension changes.
KEY_FINGERPRINT = fingerprint(
    ApiKey.id,
    Organization.id,
    Organization.slug,
    Organization.name,
    Organization.role,
    Organization.suspended_until,
)
# The lookup of a live key by its public prefix (``:prefix``); registry/copies.py
# verifies copies of its result with its KEY_FINGERPRINT.
KEY_LOOKUP = (
    select(
        col(ApiKey.key_hash),
        col(Organization.id),
        col(Organization.slug),
        col(Organization.name),
        col(Organization.role),
        col(Organization.suspended_until),
        KEY_FINGERPRINT,
    )
    .join(Organization, col(Organization.id) == ApiKey.organization_id)
    .where(col(ApiKey.prefix) == bindparam("prefix"))
    .where(col(ApiKey.revoked_at).is_(None))
)


def authenticate(session: Session, key: str) -> Caller:
    """Return the caller for a bearer key; raise Unauthorized. One indexed query."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        raise Unauthorized("the API key is malformed")
    row = session.connection().execute(KEY_LOOKUP, {"prefix": parts[1]}).first()
    # Compare in constant time, and hash even when the prefix is unknown so the
    # timing does not tell an attacker which prefixes exist.
    stored = row[0] if row is not None else "0" * 64
    if not hmac.compare_digest(stored, _hash(key)) or row is None:
        raise Unauthorized("the API key is not valid")
    # Organization.id is typed optional (unset before insert); a joined row always has one.
    return Caller(row[1], row[2], row[3], row[4], row[5], parts[1], row[6])  # type: ignore[arg-type]


# --- the regulator console's directory (issue 6) ------------------------------


def list_orgs(session: Session) -> list[tuple[Organization, int, int]]:
    """Return every organization with its number of senders and of live keys, by slug."""
    senders = (
        select(col(Sender.organization_id), func.count().label("n"))
        .group_by(col(Sender.organization_id))
        .subquery()
    )
    keys = (
        select(col(ApiKey.organization_id), func.count().label("n"))
        .where(col(ApiKey.revoked_at).is_(None))
        .group_by(col(ApiKey.organization_id))
        .subquery()
    )
    # None where the outer join finds no sender or no live key.
    sender_count: ColumnElement[int | None] = senders.c.n
    key_count: ColumnElement[int | None] = keys.c.n
    rows = session.execute(
        select(Organization, sender_count, key_count)
        .outerjoin(senders, senders.c.organization_id == Organization.id)
        .outerjoin(keys, keys.c.organization_id == Organization.id)
        .order_by(col(Organization.slug))
    )
    return [(org, n_senders or 0, n_keys or 0) for org, n_senders, n_keys in rows]


def list_keys(session: Session, org_id: int) -> list[ApiKey]:
    """Return an organization's API keys (prefixes only), newest first."""
    return list(
        session.scalars(
            select(ApiKey)
            .where(col(ApiKey.organization_id) == org_id)
            .order_by(col(ApiKey.id).desc())
        )
    )


def slug_of(session: Session, org_id: int) -> str:
    """Return an organization's slug."""
    slug = session.scalar(select(col(Organization.slug)).where(col(Organization.id) == org_id))
    if slug is None:
        raise NotFound(f"no organization {org_id}")
    return str(slug)
