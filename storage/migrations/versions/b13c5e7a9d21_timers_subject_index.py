"""timers: index on (subject_id, kind), what an approval, a cancel or a deactivation cancels by

Revision ID: b13c5e7a9d21
Revises: d3f8a2c61e07
Create Date: 2026-11-30 17:50:00.000000
"""
from __future__ import annotations

from alembic import op

revision = 'b13c5e7a9d21'
down_revision = 'd3f8a2c61e07'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_timers_subject', 'timers', ['subject_id', 'kind'])


def downgrade() -> None:
    op.drop_index('ix_timers_subject', table_name='timers')
