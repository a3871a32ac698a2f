"""points ledger and check-ins

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 21:16:42.003368
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkins',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('streak', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'day')
    )
    op.create_table('point_balances',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('lifetime', sa.Integer(), nullable=False),
    sa.CheckConstraint('balance >= 0', name='ck_point_balances_not_negative'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id')
    )
    op.create_table('point_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('point_entries', schema=None) as batch_op:
        batch_op.create_index('ix_point_entries_member', ['member_id', 'id'], unique=False)

    op.create_table('point_lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['point_entries.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.create_index('ix_point_lots_expiry', ['expires_at'], unique=False)
        batch_op.create_index('ix_point_lots_spendable', ['member_id', 'remaining'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_point_lots_spendable')
        batch_op.drop_index('ix_point_lots_expiry')

    op.drop_table('point_lots')
    with op.batch_alter_table('point_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_point_entries_member')

    op.drop_table('point_entries')
    op.drop_table('point_balances')
    op.drop_table('checkins')
