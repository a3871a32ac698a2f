"""staff relationships and sync runs: who follows which customer, and the WeCom sync's progress

One row per (staff member, customer) relationship (跟进人): added at, channel code, remark, and
when and how it ended (by the staff, by the customer, by a transfer), so that a customer is lost
only when their last relationship really ends. ``sync_runs`` keeps a sync's cursors, counts and
errors, so that a restart continues where it stopped.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_relationships',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('staff', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('added_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('channel_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('remark', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('ended_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'staff')
    )
    with op.batch_alter_table('staff_relationships', schema=None) as batch_op:
        batch_op.create_index('ix_staff_relationships_staff', ['staff'], unique=False)

    op.create_table('sync_runs',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('sync_runs')
    with op.batch_alter_table('staff_relationships', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_relationships_staff')

    op.drop_table('staff_relationships')
