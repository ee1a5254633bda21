"""Money under concurrency (issue 30): the claim on a bonus payment (who is paying it, since when) and the
amount in the platform's own currency and minor unit (what is sent and what its records are matched to).

Revision ID: 0004_i30
Revises: 0003_media_copies
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004_i30'
down_revision = '0003_media_copies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('amount_minor', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.drop_column('amount_minor')
        batch_op.drop_column('currency')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
