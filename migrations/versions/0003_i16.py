"""Recruitment you can trust: every platform id of an assignment, the review queue, campaigns (settings
kept for re-posts, closed state), and the bonus ledger's platform id and call time.

Revision ID: 0003_i16
Revises: 0003_i15req
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003_i16'
down_revision = '0003_i15req'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recruit_assignment_ids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('post_id', sa.String(length=255), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('platform_status', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_recruit_assignment_ids_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_assignment_ids')),
    sa.UniqueConstraint('platform', 'external_id', name=op.f('uq_recruit_assignment_ids_platform_external_id'))
    )
    with op.batch_alter_table('recruit_assignment_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recruit_assignment_ids_assignment_id'), ['assignment_id'], unique=False)

    op.create_table('recruit_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('post_id', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_recruit_reviews_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_reviews')),
    sa.UniqueConstraint('platform', 'external_id', name=op.f('uq_recruit_reviews_platform_external_id'))
    )
    with op.batch_alter_table('recruit_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recruit_reviews_study_id'), ['study_id'], unique=False)

    op.create_table('recruit_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('sandbox', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_recruit_campaigns_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_campaigns')),
    sa.UniqueConstraint('key', name=op.f('uq_recruit_campaigns_key')),
    sa.UniqueConstraint('study_id', 'platform', 'sandbox', name=op.f('uq_recruit_campaigns_study_id_platform_sandbox'))
    )
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True))
    # Only MTurk has a sandbox; Prolific and lab posts were recorded with sandbox = not --live.
    op.execute(sa.text("UPDATE recruit_posts SET sandbox = :no WHERE platform <> 'mturk'").bindparams(no=False))


def downgrade() -> None:
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.drop_column('committed_at')
        batch_op.drop_column('external_id')

    op.drop_table('recruit_campaigns')
    with op.batch_alter_table('recruit_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recruit_reviews_study_id'))

    op.drop_table('recruit_reviews')
    with op.batch_alter_table('recruit_assignment_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recruit_assignment_ids_assignment_id'))

    op.drop_table('recruit_assignment_ids')
