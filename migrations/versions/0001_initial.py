"""Initial schema of the study server: studies, batches, stimuli, items, participants, assignments,
answers (append-only), verdicts, audit log.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24 11:34:12.038263
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])

    op.create_table('participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('pseudonym', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participants')),
    sa.UniqueConstraint('platform', 'worker_id', name=op.f('uq_participants_platform_worker_id'))
    )
    op.create_index('ix_participants_pseudonym', 'participants', ['pseudonym'])

    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('plan_json', sa.Text(), nullable=False),
    sa.Column('plan_sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest_json', sa.Text(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('set_root', sa.Text(), nullable=False),
    sa.Column('quota_per_batch', sa.Integer(), nullable=False),
    sa.Column('completion_code', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_studies_name'))
    )
    op.create_table('batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('quota', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_batches_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches')),
    sa.UniqueConstraint('study_id', 'index', name=op.f('uq_batches_study_id_index')),
    sa.UniqueConstraint('study_id', 'key', name=op.f('uq_batches_study_id_key'))
    )
    op.create_index('ix_batches_study_id', 'batches', ['study_id'])

    op.create_table('stimuli',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('stimulus_id', sa.String(length=128), nullable=False),
    sa.Column('media', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_stimuli_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stimuli')),
    sa.UniqueConstraint('study_id', 'stimulus_id', name=op.f('uq_stimuli_study_id_stimulus_id'))
    )
    op.create_index('ix_stimuli_study_id', 'stimuli', ['study_id'])

    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hit_id', sa.String(length=255), nullable=True),
    sa.Column('external_assignment_id', sa.String(length=255), nullable=True),
    sa.Column('turk_submit_to', sa.String(length=255), nullable=True),
    sa.Column('prolific_study_id', sa.String(length=255), nullable=True),
    sa.Column('prolific_session_id', sa.String(length=255), nullable=True),
    sa.Column('audio_check_passed', sa.Boolean(), nullable=True),
    sa.Column('audio_check_attempts', sa.Integer(), nullable=False),
    sa.Column('completion_code', sa.String(length=40), nullable=True),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_assignments_batch_id_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_assignments_participant_id_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_assignments_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('study_id', 'participant_id', name=op.f('uq_assignments_study_id_participant_id')),
    sa.UniqueConstraint('token', name=op.f('uq_assignments_token'))
    )
    op.create_index('ix_assignments_batch_id_status', 'assignments', ['batch_id', 'status'])
    op.create_index('ix_assignments_participant_id', 'assignments', ['participant_id'])
    op.create_index('ix_assignments_study_id_status', 'assignments', ['study_id', 'status'])

    op.create_table('items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('stimulus_pk', sa.Integer(), nullable=False),
    sa.Column('repeat_of', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_items_batch_id_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_pk'], ['stimuli.id'], name=op.f('fk_items_stimulus_pk_stimuli'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
    sa.UniqueConstraint('batch_id', 'position', name=op.f('uq_items_batch_id_position'))
    )
    op.create_index('ix_items_batch_id', 'items', ['batch_id'])
    op.create_index('ix_items_stimulus_pk', 'items', ['stimulus_pk'])

    op.create_table('answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('answer_id', sa.String(length=64), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('rt_ms', sa.Integer(), nullable=True),
    sa.Column('played_fraction', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_answers_assignment_id_assignments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_answers_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answers')),
    sa.UniqueConstraint('answer_id', name=op.f('uq_answers_answer_id')),
    sa.UniqueConstraint('assignment_id', 'item_id', name=op.f('uq_answers_assignment_id_item_id'))
    )
    op.create_index('ix_answers_item_id', 'answers', ['item_id'])

    op.create_table('verdicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('n_inconsistent', sa.Integer(), nullable=False),
    sa.Column('n_repeat_answers', sa.Integer(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_verdicts_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verdicts')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_verdicts_assignment_id'))
    )


def downgrade() -> None:
    op.drop_table('verdicts')
    op.drop_table('answers')
    op.drop_table('items')
    op.drop_table('assignments')
    op.drop_table('stimuli')
    op.drop_table('batches')
    op.drop_table('studies')
    op.drop_table('participants')
    op.drop_table('audit_log')
