"""member flows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:44:06.676263
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_flows',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('flow', sa.String(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('entered_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadlines_fired', sa.Integer(), nullable=False),
    sa.Column('deadline_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'flow')
    )
    with op.batch_alter_table('member_flows', schema=None) as batch_op:
        batch_op.create_index('ix_member_flows_deadline', ['deadline_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('member_flows', schema=None) as batch_op:
        batch_op.drop_index('ix_member_flows_deadline')

    op.drop_table('member_flows')
