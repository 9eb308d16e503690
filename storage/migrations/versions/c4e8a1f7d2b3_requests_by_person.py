"""schedule_requests: index on (principal_id, role_id, status), what an ask reads to find the
person's earlier ask of the role

Revision ID: c4e8a1f7d2b3
Revises: b13c5e7a9d21
Create Date: 2026-11-30 19:30:00.000000
"""
from __future__ import annotations

from alembic import op

revision = 'c4e8a1f7d2b3'
down_revision = 'b13c5e7a9d21'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_requests_person', 'schedule_requests', ['principal_id', 'role_id', 'status']
    )


def downgrade() -> None:
    op.drop_index('ix_requests_person', table_name='schedule_requests')
