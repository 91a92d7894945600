"""schema ready to distribute by phone: phone in every key, no links across shards

Revision ID: 0026
Revises: 0021
Create Date: 2026-12-01 15:50:28.233332

What a table distributed by phone needs (registry/shards.py, docs/scaling.md):

- ``consent_key`` (organization_id, external_id) -> phone, consent_id: the
  consent push's idempotency key, distributed by organization, filled from
  the existing consents; it replaces the global ``uq_consent_org_external``.
- ``consent_request.consent_id`` is no longer a foreign key (it would link
  two distributed tables by id alone); the service sets it.
- ``ix_event_seq`` is no longer unique (the sealer's lock keeps seq unique);
  ``ix_event_phone_seq`` (phone, seq) is.
- PostgreSQL only: the primary keys of the tables with surrogate ids hold the
  phone, appended: (id, phone); ``check_log`` (id, checked_at, phone). Each is
  swapped in place, so the rows keep their ids and sequences. Autogenerate
  does not compare primary keys, and SQLite keeps ``id INTEGER PRIMARY KEY``
  (the rowid alias that assigns ids; a composite key would leave them NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0026"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL primary keys: before -> after.
_KEYS = {
    "consent": ("id", "id, phone"),
    "opt_out": ("id", "id, phone"),
    "event": ("id", "id, phone"),
    "consent_request": ("id", "id, phone"),
    "disconnection": ("id", "id, phone"),
    "login_code": ("id", "id, phone"),
    "sms_message": ("id", "id, phone"),
    "check_log": ("id, checked_at", "id, checked_at, phone"),
}


def _primary_keys(which: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _KEYS.items():
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns[which]})"
        )


def upgrade() -> None:
    op.create_table(
        "consent_key",
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "consent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_consent_key_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("organization_id", "external_id", name=op.f("pk_consent_key")),
    )
    op.execute(
        "INSERT INTO consent_key (organization_id, external_id, phone, consent_id) "
        "SELECT organization_id, external_id, phone, id FROM consent WHERE external_id IS NOT NULL"
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_consent_org_external"), type_="unique")

    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_consent_request_consent_id_consent"), type_="foreignkey"
        )

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_phone_seq"))
        batch_op.create_index("ix_event_phone_seq", ["phone", "seq"], unique=True)
        batch_op.drop_index(batch_op.f("ix_event_seq"))
        batch_op.create_index("ix_event_seq", ["seq"], unique=False)

    _primary_keys(1)


def downgrade() -> None:
    _primary_keys(0)
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_seq")
        batch_op.create_index(batch_op.f("ix_event_seq"), ["seq"], unique=True)
        batch_op.drop_index("ix_event_phone_seq")
        batch_op.create_index(batch_op.f("ix_event_phone_seq"), ["phone", "seq"], unique=False)

    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_consent_request_consent_id_consent"), "consent", ["consent_id"], ["id"]
        )

    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_consent_org_external"), ["organization_id", "external_id"]
        )

    op.drop_table("consent_key")
