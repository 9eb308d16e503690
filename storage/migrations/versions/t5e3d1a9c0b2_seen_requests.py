"""seen signed requests (replay protection)

Revision ID: t5e3d1a9c0b2
Revises: c7d1e2f3a4b5
Create Date: 2026-11-30 11:10:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types


revision = 't5e3d1a9c0b2'
down_revision = 'c7d1e2f3a4b5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seen_requests',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('seen_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_requests_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('seen_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_requests_expires_at'))
    op.drop_table('seen_requests')
