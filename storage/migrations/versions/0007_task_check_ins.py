"""task check-ins

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 21:32:43.090304
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('task', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('proof', sa.Text(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.create_index('ix_task_checkins_member_task', ['member_id', 'task', 'at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_task_checkins_member_task')

    op.drop_table('task_checkins')
