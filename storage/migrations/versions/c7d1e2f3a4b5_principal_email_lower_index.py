"""principals: index on lower(email), the lookup every command makes

Revision ID: c7d1e2f3a4b5
Revises: a1c7e4d20b9f
Create Date: 2026-11-30 11:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c7d1e2f3a4b5'
down_revision = 'a1c7e4d20b9f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_principals_email_lower', 'principals', [sa.text('lower(email)')])


def downgrade() -> None:
    op.drop_index('ix_principals_email_lower', table_name='principals')
