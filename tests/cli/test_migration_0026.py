"""Migration 0026: the consent keys are filled from the consents; every row keeps its id.

On SQLite (a file) and, when the suite runs on PostgreSQL, in a schema of its
own in that database, where the primary keys are swapped in place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, insert, select, text
from sqlalchemy.engine import Engine

from registry import migrate
from registry.database.engines import make_engine

SCHEMA = "migration_0026"


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """Return a database migrated to 0021 (its URL and an engine)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        base = os.environ.get("REGISTRY_TEST_DATABASE_URL", "")
        if not base.startswith("postgresql"):
            pytest.skip("the suite runs on SQLite")
        admin = make_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        admin.dispose()
        url = base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{SCHEMA}"
    migrate.upgrade(url, revision="0021")
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        if request.param == "postgresql":
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
        engine.dispose()


def test_0026_fills_the_consent_keys_and_keeps_every_id(old_database: tuple[str, Engine]) -> None:
    url, engine = old_database
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    now = datetime(2026, 11, 20, 12, 0)
    consent = {"sender_id": 1, "organization_id": 1, "channels": "sms", "status": "active",
               "evidence_method": "web_form", "evidence_captured_at": now, "created_at": now}  # fmt: skip
    with engine.begin() as db:
        db.execute(insert(t["organization"]).values(id=1, slug="acme", name="Acme",
                                                    role="sender", created_at=now))  # fmt: skip
        db.execute(insert(t["sender"]).values(id=1, organization_id=1, code="acme-cards",
                                              name="Acme cards", category="finance",
                                              created_at=now))  # fmt: skip
        db.execute(insert(t["consent"]), [
            {**consent, "id": 7, "phone": "+8613100000001", "external_id": "crm-1"},
            {**consent, "id": 9, "phone": "+8613100000002", "external_id": None},
            {**consent, "id": 12, "phone": "+8613100000003", "external_id": "crm-3"},
        ])  # fmt: skip
        db.execute(insert(t["event"]), [
            {"id": 40, "phone": "+8613100000001", "type": "consent.created", "at": now,
             "consent_id": 7, "actor": "org:acme", "via": "api", "seq": 1},
        ])  # fmt: skip

    migrate.upgrade(url)

    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.connect() as db:
        keys = db.execute(select(t["consent_key"])).all()
        assert sorted(keys) == [
            (1, "crm-1", "+8613100000001", 7),
            (1, "crm-3", "+8613100000003", 12),
        ]
        assert db.scalars(select(t["consent"].c.id).order_by(t["consent"].c.id)).all() == [7, 9, 12]
        assert db.execute(select(t["event"].c.id, t["event"].c.seq)).all() == [(40, 1)]
        if engine.dialect.name == "postgresql":
            keys = dict(
                db.execute(
                    text(
                        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) "
                        "FROM pg_constraint WHERE contype = 'p'"
                    )
                ).all()
            )
            assert keys["consent"] == "PRIMARY KEY (id, phone)"
            assert keys["check_log"] == "PRIMARY KEY (id, checked_at, phone)"
        # A new row still takes its id from the table (sequence or rowid).
        new = {**consent, "phone": "+8613100000004", "created_at": now}
        made = db.execute(insert(t["consent"]).values(**new).returning(t["consent"].c.id))
        assert made.scalar_one() is not None
        db.rollback()

    command.downgrade(migrate.alembic_config(url), "0021")
    meta = MetaData()
    meta.reflect(engine)
    assert "consent_key" not in meta.tables
    with engine.connect() as db:
        assert db.scalars(select(meta.tables["consent"].c.id)).all() == [7, 9, 12]
