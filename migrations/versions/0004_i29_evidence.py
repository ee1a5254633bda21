"""Evidence of watching in bytes and pace, technical failures, places held by progress (issue 29).

- ``media_fetches.first_byte_at``: the first request of the trial's media that served bytes (HEAD, 304 and
  empty ranges count for nothing); ``media_fetches.n_gets``: GET requests of it (served or not);
- ``answers.watched`` / ``answers.paced``: the answer's evidence of watching (bytes and time of its clip) and
  of pace (the answers so far could have been given after their clips played one after the other);
- ``assignments.progress_at``: the last progress of a started session (an answer, a listening-check step,
  media bytes): what keeps its place (``IDLE_RELEASE_S``);
- ``assignments.arrival_net``: the arriving address (IPv4) or its /64 (IPv6), for the per-address cap on
  places held at once (``study_server.study.addresses``);
- ``verdicts.verdict`` is 24 characters wide: ``technical_failure`` (too many clips would not load).

Revision ID: 0004_i29
Revises: 0003_media_copies
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004_i29'
down_revision = '0004_i32'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('media_fetches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_byte_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('n_gets', sa.Integer(), nullable=True))
    # Rows recorded before: a request that served bytes was a GET, and its first request the first byte.
    op.execute("UPDATE media_fetches SET first_byte_at = first_requested_at, n_gets = n_requests "
               "WHERE bytes_served > 0")
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watched', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('paced', sa.Boolean(), nullable=True))
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('arrival_net', sa.String(length=64), nullable=True))
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.alter_column('verdict', existing_type=sa.String(length=16), type_=sa.String(length=24),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.alter_column('verdict', existing_type=sa.String(length=24), type_=sa.String(length=16),
                              existing_nullable=False)
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_column('arrival_net')
        batch_op.drop_column('progress_at')
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_column('paced')
        batch_op.drop_column('watched')
    with op.batch_alter_table('media_fetches', schema=None) as batch_op:
        batch_op.drop_column('n_gets')
        batch_op.drop_column('first_byte_at')
