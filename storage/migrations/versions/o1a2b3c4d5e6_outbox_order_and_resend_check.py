"""outbox: per-recipient order index, claim-order index, attempted_at for the re-send check

Revision ID: o1a2b3c4d5e6
Revises: t5e3d1a9c0b2
Create Date: 2026-11-30 11:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types


revision = 'o1a2b3c4d5e6'
down_revision = 't5e3d1a9c0b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempted_at', storage.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_outbox_recipient', ['recipient_id', 'status'], unique=False)
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at', 'id'], unique=False)
    # A send interrupted before this upgrade may have gone out: look before re-sending it.
    op.execute("UPDATE outbox SET attempted_at = created_at "
               "WHERE transport <> '*' AND (status = 'sending' OR attempts > 0)")


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.drop_index('ix_outbox_recipient')
        batch_op.drop_column('attempted_at')
