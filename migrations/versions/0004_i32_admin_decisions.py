"""The researcher's decisions from the admin pages, with their reasons (issue 32).

- ``admin_decisions``: who decided what about which assignment, when and why (a verdict overridden, an
  arrival hold released or extended, a queued submission approved / rejected / asked to return / paid by hand);
- ``assignments.hold_until``: an arrival hold the researcher extended lapses then (not at allocation + hold).

Revision ID: 0004_i32
Revises: 0003_media_copies
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004_i32'
down_revision = '0004_i30'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'],
                            name=op.f('fk_admin_decisions_assignment_id_assignments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'],
                            name=op.f('fk_admin_decisions_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_decisions'))
    )
    with op.batch_alter_table('admin_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_decisions_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_decisions_study_id'), ['study_id'], unique=False)
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
    with op.batch_alter_table('admin_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_decisions_study_id'))
        batch_op.drop_index(batch_op.f('ix_admin_decisions_assignment_id'))
    op.drop_table('admin_decisions')
