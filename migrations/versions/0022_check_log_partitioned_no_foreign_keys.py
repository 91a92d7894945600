"""check log: no foreign keys, a partial batch index; on PostgreSQL partitioned by month

Revision ID: 0022
Revises: 0015
Create Date: 2026-12-01 12:49:37.244857

PostgreSQL: the plain ``check_log`` is replaced by a table partitioned by range
of ``checked_at``, one partition per calendar month (``check_log_yYYYYmMM``,
from the oldest row's month to two months ahead) and a default partition that
catches any row outside them (checks/partitions.py moves such rows out when it
makes their month). Its primary key is (id, checked_at): a partitioned table's
unique constraints must hold the partition key. The rows are copied; the id
sequence is kept. Autogenerate compares neither partitioning nor primary keys,
so the drift check (``registry db check``) sees the same columns and indexes
on both databases; migrations/env.py leaves the partitions out of it.
SQLite keeps a plain table.
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FKS = (
    ("fk_check_log_sender_id_sender", "sender", "sender_id"),
    ("fk_check_log_agent_id_organization", "organization", "agent_id"),
    ("fk_check_log_organization_id_organization", "organization", "organization_id"),
    ("fk_check_log_batch_id_check_batch", "check_batch", "batch_id"),
)
_COLUMNS = (
    "id, phone, sender_id, organization_id, agent_id, channel, purpose, category, decision, "
    "reason, consent_id, at, checked_at, batch_id"
)
_INDEXES = (
    "CREATE INDEX ix_check_log_phone_checked_at ON check_log (phone, checked_at)",
    "CREATE INDEX ix_check_log_sender_checked_at ON check_log (sender_id, checked_at)",
    "CREATE INDEX ix_check_log_batch_id ON check_log (batch_id) WHERE batch_id IS NOT NULL",
)


def _month(day: date, ahead: int = 0) -> date:
    months = day.year * 12 + day.month - 1 + ahead
    return date(months // 12, months % 12 + 1, 1)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("check_log", schema=None) as batch_op:
            for name, _table, _column in _FKS:
                batch_op.drop_constraint(name, type_="foreignkey")
            batch_op.drop_index("ix_check_log_batch_id")
            batch_op.create_index(
                "ix_check_log_batch_id",
                ["batch_id"],
                unique=False,
                sqlite_where=sa.text("batch_id IS NOT NULL"),
            )
        return
    op.execute("ALTER TABLE check_log RENAME TO check_log_plain")
    for name in ("ix_check_log_phone_checked_at", "ix_check_log_sender_checked_at",
                 "ix_check_log_batch_id"):  # fmt: skip
        op.execute(f"DROP INDEX {name}")
    op.execute("ALTER TABLE check_log_plain DROP CONSTRAINT pk_check_log")
    op.execute(
        """
        CREATE TABLE check_log (
            id BIGINT NOT NULL DEFAULT nextval('check_log_id_seq'::regclass),
            phone VARCHAR(16) NOT NULL,
            sender_id INTEGER NOT NULL,
            organization_id INTEGER NOT NULL,
            agent_id INTEGER,
            channel VARCHAR(8) NOT NULL,
            purpose VARCHAR(16) NOT NULL,
            category VARCHAR(32) NOT NULL,
            decision VARCHAR(8) NOT NULL,
            reason VARCHAR(32) NOT NULL,
            consent_id BIGINT,
            at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            checked_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
            batch_id BIGINT,
            CONSTRAINT pk_check_log PRIMARY KEY (id, checked_at)
        ) PARTITION BY RANGE (checked_at)
        """
    )
    op.execute("ALTER SEQUENCE check_log_id_seq OWNED BY check_log.id")
    op.execute("CREATE TABLE check_log_default PARTITION OF check_log DEFAULT")
    oldest = bind.execute(sa.text("SELECT min(checked_at) FROM check_log_plain")).scalar()
    today = date.today()
    month = _month(oldest.date() if oldest is not None else today)
    while month <= _month(today, 2):
        following = _month(month, 1)
        op.execute(
            f"CREATE TABLE check_log_y{month.year:04d}m{month.month:02d} PARTITION OF check_log "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"
        )
        month = following
    for statement in _INDEXES:
        op.execute(statement)
    op.execute(f"INSERT INTO check_log ({_COLUMNS}) SELECT {_COLUMNS} FROM check_log_plain")  # noqa: S608
    op.execute("DROP TABLE check_log_plain")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE check_log RENAME TO check_log_parts")
        for name in ("ix_check_log_phone_checked_at", "ix_check_log_sender_checked_at",
                     "ix_check_log_batch_id"):  # fmt: skip
            op.execute(f"DROP INDEX {name}")
        op.execute("ALTER TABLE check_log_parts DROP CONSTRAINT pk_check_log")
        op.execute(
            "CREATE TABLE check_log (LIKE check_log_parts INCLUDING DEFAULTS, "
            "CONSTRAINT pk_check_log PRIMARY KEY (id))"
        )
        op.execute("ALTER SEQUENCE check_log_id_seq OWNED BY check_log.id")
        op.execute(f"INSERT INTO check_log ({_COLUMNS}) SELECT {_COLUMNS} FROM check_log_parts")  # noqa: S608
        op.execute("DROP TABLE check_log_parts")
        for statement in _INDEXES:
            op.execute(statement.replace(" WHERE batch_id IS NOT NULL", ""))
        for name, table, column in _FKS:
            op.create_foreign_key(name, "check_log", table, [column], ["id"])
        return
    with op.batch_alter_table("check_log", schema=None) as batch_op:
        batch_op.drop_index("ix_check_log_batch_id")
        batch_op.create_index("ix_check_log_batch_id", ["batch_id"], unique=False)
        for name, table, column in _FKS:
            batch_op.create_foreign_key(name, table, [column], ["id"])
