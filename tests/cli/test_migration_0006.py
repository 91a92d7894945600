"""Migration 0006_agent: complaints filed before it name the agent; check rollups are recounted."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, select

from registry import migrate


def test_0006_backfills_the_agent_and_resets_the_check_rollups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, revision="0005_unblock")
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    now = datetime(2026, 11, 20, 12, 0)
    with engine.begin() as db:
        for i, slug in ((1, "acme"), (2, "callcenter-b")):
            db.execute(insert(t["organization"]).values(id=i, slug=slug, name=slug, role="sender",
                                                        created_at=now))  # fmt: skip
        db.execute(insert(t["sender"]).values(id=1, organization_id=1, code="acme-cards",
                                              name="Acme cards", category="finance", created_at=now))  # fmt: skip
        check = {"sender_id": 1, "organization_id": 1, "channel": "sms", "purpose": "marketing",
                 "category": "finance", "decision": "deny", "reason": "no_consent", "at": now,
                 "agent_id": None}  # fmt: skip
        db.execute(insert(t["check_log"]), [
            # +861: the agent asked last before the contact (an earlier own check does not count).
            {**check, "id": 1, "phone": "+8613800000001", "checked_at": now - timedelta(hours=2)},
            {**check, "id": 2, "phone": "+8613800000001", "agent_id": 2,
             "checked_at": now - timedelta(hours=1)},
            # +862: the agent asked only after the contact; Acme before it.
            {**check, "id": 3, "phone": "+8613800000002", "checked_at": now - timedelta(hours=1)},
            {**check, "id": 4, "phone": "+8613800000002", "agent_id": 2,
             "checked_at": now + timedelta(hours=1)},
        ])  # fmt: skip
        complaint = {"sender_id": 1, "organization_id": 1, "address": "10690001", "channel": "sms",
                     "contacted_at": now, "status": "open", "created_at": now + timedelta(hours=3)}  # fmt: skip
        db.execute(insert(t["complaint"]), [
            {**complaint, "id": 1, "phone": "+8613800000001"},
            {**complaint, "id": 2, "phone": "+8613800000002"},
            {**complaint, "id": 3, "phone": "+8613800000003", "sender_id": None,
             "organization_id": None},
        ])  # fmt: skip
        db.execute(insert(t["stat_daily"]).values(metric="checks", day=now.date(), key1="1",
                                                  key2="deny:no_consent", value=4))  # fmt: skip
        db.execute(insert(t["stat_watermark"]).values(source="check_log", last_id=4,
                                                      refreshed_at=now))  # fmt: skip

    migrate.upgrade(url)

    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.connect() as db:
        agents = dict(db.execute(select(t["complaint"].c.id, t["complaint"].c.agent_id)).all())
        assert agents == {1: 2, 2: None, 3: None}
        assert db.execute(select(t["stat_daily"])).all() == []
        assert db.scalar(select(t["stat_watermark"].c.last_id)) == 0
    engine.dispose()
