"""API keys: stored only as a hash, compared in constant time, unknown prefixes included."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.errors import Unauthorized
from registry.orgs import services as orgs
from registry.orgs.models import ApiKey


@pytest.fixture
def key(session: Session) -> tuple[ApiKey, str]:
    org = orgs.create_org(session, "keyholder", "Key Holder")
    return orgs.create_key(session, org)


def test_the_database_holds_a_hash_never_the_key(session: Session, key: tuple[ApiKey, str]) -> None:
    row, secret = key
    prefix, random_part = secret.removeprefix("ann_").split("_", 1)
    assert len(random_part) >= 32  # 24 random bytes: nothing to brute-force behind a fast hash
    stored = session.execute(text("SELECT * FROM api_key WHERE id = :id"), {"id": row.id}).one()
    assert all(random_part not in str(value) for value in stored)  # neither whole nor in part
    assert row.prefix == prefix
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_keys_are_compared_in_constant_time(
    session: Session, key: tuple[ApiKey, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, secret = key
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def compare_digest(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(orgs.hmac, "compare_digest", compare_digest)
    assert orgs.authenticate(session, secret).slug == "keyholder"
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized):
        orgs.authenticate(session, wrong)  # the right prefix, a wrong secret
    with pytest.raises(Unauthorized):
        orgs.authenticate(session, "ann_00000000_" + secret.split("_", 2)[2])  # unknown prefix
    # Every attempt went through compare_digest, on hashes, even with an unknown prefix
    # (so the time taken does not tell which prefixes exist).
    assert len(compared) == 3
    assert all(len(a) == len(b) == 64 for a, b in compared)


def test_a_revoked_key_no_longer_authenticates(session: Session, key: tuple[ApiKey, str]) -> None:
    row, secret = key
    orgs.revoke_key(session, row.prefix)
    session.flush()
    with pytest.raises(Unauthorized):
        orgs.authenticate(session, secret)
    assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == row.id)) is not None
