"""audit events record the key their hash is keyed with

Revision ID: a1c7e4d20b9f
Revises: 597c1be3172a
Create Date: 2026-11-30 11:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a1c7e4d20b9f'
down_revision = '597c1be3172a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows keep NULL: plain SHA-256, as they were written.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('key_id')
