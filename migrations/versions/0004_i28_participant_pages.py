"""The participant's pages belong to the researcher (issue 28): who took a session (assignments.kind: real,
preview, simulated) and the answers to the spec's demographic items (demographics). The new status
``declined`` needs no change (assignments.status is a string).

Revision ID: 0004_i28
Revises: 0003_media_copies
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004_i28'
down_revision = '0004_i29'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='real', nullable=False))
    op.create_table('demographics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_demographics_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_demographics')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_demographics_assignment_id'))
    )


def downgrade() -> None:
    op.drop_table('demographics')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('kind')
