"""consents carry the reference of the registry's confirmation text

Revision ID: 0007
Revises: 0013_stat_gap
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0013_stat_gap'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_ref', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(
            'ix_event_claim', ['organization_id', 'id'], unique=False,
            postgresql_where=sa.text("type = 'claim.recorded'"),
            sqlite_where=sa.text("type = 'claim.recorded'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_claim')
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_column('reply_ref')
