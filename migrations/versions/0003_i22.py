"""Listening checks: volume calibration and headphone-screen trials.

Revision ID: 0003_i22
Revises: 0003_i16
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003_i22'
down_revision = '0003_i16'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('listening_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('calibrated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts_used', sa.Integer(), nullable=False),
    sa.Column('n_correct', sa.Integer(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_listening_checks_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listening_checks')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_listening_checks_assignment_id'))
    )
    op.create_table('screen_trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('trial', sa.Integer(), nullable=False),
    sa.Column('answer', sa.Integer(), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_screen_trials_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_screen_trials')),
    sa.UniqueConstraint('assignment_id', 'kind', 'attempt', 'trial', name=op.f('uq_screen_trials_assignment_id_kind_attempt_trial'))
    )


def downgrade() -> None:
    op.drop_table('screen_trials')
    op.drop_table('listening_checks')
