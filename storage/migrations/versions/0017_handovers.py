"""handovers: 在职/离职继承 of a staff member's customers and groups, and the staff who left

An operator's handover (chat ``/handover`` or ``POST /api/handovers``) is one row of
``handovers``; each customer and group it moves is a row of ``handover_items`` followed until
WeCom says where it ended. ``departed_staff`` keeps who left, so that no owner task waits for
them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 03:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import storage.types


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('handovers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('scope', sa.String(length=12), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=False),
    sa.Column('from_staff', sa.String(length=128), nullable=False),
    sa.Column('to_staff', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_by', sa.String(length=160), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reported', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_handovers_status', 'handovers', ['status'], unique=False)
    op.create_table('handover_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handover_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['handover_id'], ['handovers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('handover_id', 'kind', 'target', name='uq_handover_items_target')
    )
    op.create_table('departed_staff',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('staff', sa.String(length=128), nullable=False),
    sa.Column('left_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'staff')
    )


def downgrade() -> None:
    op.drop_table('departed_staff')
    op.drop_table('handover_items')
    op.drop_index('ix_handovers_status', table_name='handovers')
    op.drop_table('handovers')
