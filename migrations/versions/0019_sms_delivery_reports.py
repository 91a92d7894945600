"""sms delivery reports: what the gateway's last delivery report said of each outbound text

Kannel's dlr-url and the SMS clouds' status callbacks record on the message
whether the SMSC accepted it and whether it reached the phone; provider_ref is
the gateway's own id of the message, for the reports that carry only that.

Revision ID: 0019
Revises: 0022
Create Date: 2026-12-01 12:30:57.714237
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import registry.timeutil


revision: str = '0019'
down_revision = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('delivery', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True))
        batch_op.add_column(sa.Column('delivery_detail', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('delivery_at', registry.timeutil.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_sms_message_provider_ref'), ['provider_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_message_provider_ref'))
        batch_op.drop_column('delivery_at')
        batch_op.drop_column('delivery_detail')
        batch_op.drop_column('delivery')
        batch_op.drop_column('provider_ref')
