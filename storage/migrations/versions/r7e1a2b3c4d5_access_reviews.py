"""access reviews: definitions, instances, items, reviewers; cards redrawn by name

Revision ID: r7e1a2b3c4d5
Revises: o1a2b3c4d5e6
Create Date: 2026-11-30 13:43:46.527849
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types


revision = 'r7e1a2b3c4d5'
down_revision = 'o1a2b3c4d5e6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_definitions',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('review_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('definition_id', sa.String(length=100), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('scheduled_for', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.Enum('InProgress', 'Completed', 'Applied', name='reviewstatus', native_enum=False, length=16), nullable=False),
    sa.Column('opened_by', sa.String(length=320), nullable=False),
    sa.Column('starts_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['definition_id'], ['review_definitions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('definition_id', 'number'),
    sa.UniqueConstraint('definition_id', 'scheduled_for')
    )
    op.create_table('review_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('activations', sa.Integer(), nullable=False),
    sa.Column('recommendation', sa.Enum('Approve', 'Deny', 'DontKnow', 'NotReviewed', name='reviewdecision', native_enum=False, length=16), nullable=True),
    sa.Column('decision', sa.Enum('Approve', 'Deny', 'DontKnow', 'NotReviewed', name='reviewdecision', native_enum=False, length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.Enum('Keep', 'Remove', name='reviewoutcome', native_enum=False, length=16), nullable=True),
    sa.Column('applied_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['principals.id'], ),
    sa.ForeignKeyConstraint(['instance_id'], ['review_instances.id'], ),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], ),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_instance', ['instance_id', 'decision'], unique=False)

    op.create_table('review_reviewers',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['review_instances.id'], ),
    sa.ForeignKeyConstraint(['item_id'], ['review_items.id'], ),
    sa.ForeignKeyConstraint(['reviewer_id'], ['principals.id'], ),
    sa.PrimaryKeyConstraint('item_id', 'reviewer_id')
    )
    with op.batch_alter_table('review_reviewers', schema=None) as batch_op:
        batch_op.create_index('ix_review_reviewers_reviewer', ['reviewer_id', 'instance_id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card', sa.String(length=64), nullable=True))

    with op.batch_alter_table('posted_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_posted_messages_card'), ['card'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('posted_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_posted_messages_card'))
        batch_op.drop_column('card')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('card')

    with op.batch_alter_table('review_reviewers', schema=None) as batch_op:
        batch_op.drop_index('ix_review_reviewers_reviewer')

    op.drop_table('review_reviewers')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_instance')

    op.drop_table('review_items')
    op.drop_table('review_instances')
    op.drop_table('review_definitions')
