"""Recruitment tables: platform posts, the bonus ledger, lab tokens, exclusion qualifications.

Revision ID: 0002_recruitment
Revises: 0001_initial
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002_recruitment'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recruit_qualifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family', sa.String(length=100), nullable=False),
    sa.Column('sandbox', sa.Boolean(), nullable=False),
    sa.Column('qualification_type_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_qualifications')),
    sa.UniqueConstraint('family', 'sandbox', name=op.f('uq_recruit_qualifications_family_sandbox'))
    )
    op.create_table('lab_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_lab_tokens_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_lab_tokens_token_sha256'))
    )
    with op.batch_alter_table('lab_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lab_tokens_study_id'), ['study_id'], unique=False)

    op.create_table('recruit_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('sandbox', sa.Boolean(), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('type_id', sa.String(length=255), nullable=True),
    sa.Column('places', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_recruit_posts_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_posts')),
    sa.UniqueConstraint('platform', 'external_id', name=op.f('uq_recruit_posts_platform_external_id'))
    )
    with op.batch_alter_table('recruit_posts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recruit_posts_study_id'), ['study_id'], unique=False)

    op.create_table('recruit_qualification_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('qualification_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['qualification_id'], ['recruit_qualifications.id'], name=op.f('fk_recruit_qualification_grants_qualification_id_recruit_qualifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recruit_qualification_grants')),
    sa.UniqueConstraint('qualification_id', 'worker_id', name=op.f('uq_recruit_qualification_grants_qualification_id_worker_id'))
    )
    op.create_table('bonus_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_bonus_payments_assignment_id_assignments'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bonus_payments')),
    sa.UniqueConstraint('assignment_id', 'rule', name=op.f('uq_bonus_payments_assignment_id_rule')),
    sa.UniqueConstraint('token', name=op.f('uq_bonus_payments_token'))
    )
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bonus_payments_assignment_id'), ['assignment_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('bonus_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bonus_payments_assignment_id'))

    op.drop_table('bonus_payments')
    op.drop_table('recruit_qualification_grants')
    with op.batch_alter_table('recruit_posts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recruit_posts_study_id'))

    op.drop_table('recruit_posts')
    with op.batch_alter_table('lab_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lab_tokens_study_id'))

    op.drop_table('lab_tokens')
    op.drop_table('recruit_qualifications')
