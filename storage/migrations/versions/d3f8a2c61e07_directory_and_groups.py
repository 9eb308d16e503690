"""people from the directory, and eligibility given to Entra groups

Revision ID: d3f8a2c61e07
Revises: g7a3c1e9b2d4
Create Date: 2026-11-30 13:45:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = 'd3f8a2c61e07'
down_revision = 'g7a3c1e9b2d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directory_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'ref')
    )
    op.create_table('directory_people',
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('seen_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('left_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], ),
    sa.PrimaryKeyConstraint('principal_id')
    )
    with op.batch_alter_table('directory_people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_people_left_at'), ['left_at'], unique=False)
    op.create_table('group_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=False),
    sa.Column('role_id', sa.String(length=100), nullable=False),
    sa.Column('start_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('from_policy', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('group_id', 'role_id')
    )
    with op.batch_alter_table('group_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_assignments_group_id'), ['group_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_group_assignments_role_id'), ['role_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_assignments_role_id'))
        batch_op.drop_index(batch_op.f('ix_group_assignments_group_id'))
    op.drop_table('group_assignments')
    with op.batch_alter_table('directory_people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_people_left_at'))
    op.drop_table('directory_people')
    op.drop_table('directory_sources')
