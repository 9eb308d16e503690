"""grants: a role's grant targets, and one durable grant row per target of an activation

Revision ID: g7a3c1e9b2d4
Revises: r7e1a2b3c4d5
Create Date: 2026-11-30 13:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = 'g7a3c1e9b2d4'
down_revision = 'r7e1a2b3c4d5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grant_targets', sa.JSON(), nullable=True))
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.String(length=40), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempted_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provisioned_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['schedule_requests.id'], ),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('grant_id')
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_due', ['status', 'next_attempt_at', 'id'], unique=False)
        batch_op.create_index('ix_grants_schedule', ['schedule_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_schedule')
        batch_op.drop_index('ix_grants_due')
    op.drop_table('grants')
    with op.batch_alter_table('roles', schema=None) as batch_op:
        batch_op.drop_column('grant_targets')
