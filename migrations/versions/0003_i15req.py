"""Evidence of watching, media failures and server-side admin sessions (issue 15).

- ``media_fetches``: per trial (assignment x position), when its media was first requested and the bytes served;
- ``answers.watch_flag``: an answer stored without that evidence ("never_fetched") or sooner than the clip
  could have played ("too_fast");
- ``media_failures``: a trial whose clip would not load, recorded instead of an answer;
- ``admin_sessions``: logins the server knows of, so that logout and a new password end them.

Revision ID: 0003_i15req
Revises: 0002_recruitment
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003_i15req'
down_revision = '0002_recruitment'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('media_fetches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('first_requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('n_requests', sa.Integer(), nullable=False),
    sa.Column('bytes_served', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'],
                            name=op.f('fk_media_fetches_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_fetches')),
    sa.UniqueConstraint('assignment_id', 'position', name=op.f('uq_media_fetches_assignment_id_position'))
    )
    op.create_table('media_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('n_failures', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'],
                            name=op.f('fk_media_failures_assignment_id_assignments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_media_failures_item_id_items'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_failures')),
    sa.UniqueConstraint('assignment_id', 'item_id', name=op.f('uq_media_failures_assignment_id_item_id'))
    )
    with op.batch_alter_table('media_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_failures_item_id'), ['item_id'], unique=False)
    op.create_table('admin_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sid_sha256', sa.String(length=64), nullable=False),
    sa.Column('password_tag', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sessions')),
    sa.UniqueConstraint('sid_sha256', name=op.f('uq_admin_sessions_sid_sha256'))
    )
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watch_flag', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_column('watch_flag')
    op.drop_table('admin_sessions')
    with op.batch_alter_table('media_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_failures_item_id'))
    op.drop_table('media_failures')
    op.drop_table('media_fetches')
