"""broadcasts, deliveries, group tags, scheduler jobs

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 22:24:47.097112
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apscheduler_jobs_next_run_time'), ['next_run_time'], unique=False)

    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('playbook', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('slot', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('planned_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index('ix_broadcasts_playbook_slot', ['playbook', 'slot'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('outbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('planned_for', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_before', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('settled_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['chat_groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('broadcast_id', 'group_id', name='uq_deliveries_broadcast_group')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_due', ['status', 'not_before'], unique=False)
        batch_op.create_index('ix_deliveries_group_day', ['group_id', 'planned_for'], unique=False)
        batch_op.create_index('ix_deliveries_outbox', ['outbox_id'], unique=False)

    op.create_table('group_tags',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('tag', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['chat_groups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'tag')
    )


def downgrade() -> None:
    op.drop_table('group_tags')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_outbox')
        batch_op.drop_index('ix_deliveries_group_day')
        batch_op.drop_index('ix_deliveries_due')

    op.drop_table('deliveries')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index('ix_broadcasts_playbook_slot')

    op.drop_table('broadcasts')
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apscheduler_jobs_next_run_time'))

    op.drop_table('apscheduler_jobs')
