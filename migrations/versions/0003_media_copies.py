"""Media copies: the padded bytes served for each item and example of a study (issue 15).

Revision ID: 0003_media_copies
Revises: 0003_i22
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003_media_copies'
down_revision = '0003_i22'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('media_copies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('example_index', sa.Integer(), nullable=True),
    sa.Column('stimulus_pk', sa.Integer(), nullable=False),
    sa.Column('container', sa.String(length=8), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('pad_key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_media_copies_item_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_pk'], ['stimuli.id'], name=op.f('fk_media_copies_stimulus_pk_stimuli'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_media_copies_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_copies')),
    sa.UniqueConstraint('item_id', name=op.f('uq_media_copies_item_id')),
    sa.UniqueConstraint('study_id', 'example_index', name=op.f('uq_media_copies_study_id_example_index'))
    )
    with op.batch_alter_table('media_copies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_copies_stimulus_pk'), ['stimulus_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_copies_study_id'), ['study_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_copies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_copies_study_id'))
        batch_op.drop_index(batch_op.f('ix_media_copies_stimulus_pk'))

    op.drop_table('media_copies')
