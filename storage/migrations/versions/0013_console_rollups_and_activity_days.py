"""console rollups and activity days

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 01:06:30.788586
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import storage.types


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cohort_retention',
    sa.Column('cohort', sa.Date(), nullable=False),
    sa.Column('source_state', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('d1', sa.Integer(), nullable=True),
    sa.Column('d7', sa.Integer(), nullable=True),
    sa.Column('d30', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('cohort', 'source_state')
    )
    op.create_table('daily_metrics',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('dimension', sa.String(length=128), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'metric', 'dimension')
    )
    op.create_table('group_days',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('active_7d', sa.Integer(), nullable=False),
    sa.Column('messages', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['chat_groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'day')
    )
    with op.batch_alter_table('group_days', schema=None) as batch_op:
        batch_op.create_index('ix_group_days_day', ['day', 'group_id'], unique=False)

    op.create_table('member_days',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'day')
    )
    with op.batch_alter_table('member_days', schema=None) as batch_op:
        batch_op.create_index('ix_member_days_day', ['day'], unique=False)

    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.create_index('ix_checkins_day', ['day'], unique=False)

    with op.batch_alter_table('group_memberships', schema=None) as batch_op:
        batch_op.create_index('ix_group_memberships_left', ['left_at'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lost_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_members_first_seen', ['first_seen_at'], unique=False)
        batch_op.create_index('ix_members_lost', ['lost_at'], unique=False)

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_created', ['created_at'], unique=False)

    with op.batch_alter_table('member_flows', schema=None) as batch_op:
        batch_op.create_index('ix_member_flows_flow', ['flow', 'state'], unique=False)

    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.create_index('ix_task_checkins_at', ['at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_task_checkins_at')

    with op.batch_alter_table('member_flows', schema=None) as batch_op:
        batch_op.drop_index('ix_member_flows_flow')

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_created')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_lost')
        batch_op.drop_index('ix_members_first_seen')
        batch_op.drop_column('lost_at')

    with op.batch_alter_table('group_memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_group_memberships_left')

    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_checkins_day')

    with op.batch_alter_table('member_days', schema=None) as batch_op:
        batch_op.drop_index('ix_member_days_day')

    op.drop_table('member_days')
    with op.batch_alter_table('group_days', schema=None) as batch_op:
        batch_op.drop_index('ix_group_days_day')

    op.drop_table('group_days')
    op.drop_table('daily_metrics')
    op.drop_table('cohort_retention')
