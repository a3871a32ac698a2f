"""points pending and kinds, reward rules and code pools, polls, announcements

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 22:05:44.495572
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('announcements',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('polls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('winners', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('opened_by', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('opened_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closes_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('polls', schema=None) as batch_op:
        batch_op.create_index('ix_polls_status', ['status', 'closes_at'], unique=False)

    op.create_table('poll_votes',
    sa.Column('poll_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('option', sa.Integer(), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['poll_id'], ['polls.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('poll_id', 'member_id')
    )
    op.create_table('reward_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reward_id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('redemption_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemptions.id'], ),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('redemption_id'),
    sa.UniqueConstraint('reward_id', 'code', name='uq_reward_codes_reward_code')
    )
    with op.batch_alter_table('reward_codes', schema=None) as batch_op:
        batch_op.create_index('ix_reward_codes_free', ['reward_id', 'redemption_id'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
        batch_op.create_index(batch_op.f('ix_members_stage'), ['stage'], unique=False)

    with op.batch_alter_table('point_balances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint('ck_point_balances_pending_not_negative', 'pending >= 0')

    with op.batch_alter_table('point_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='earn', nullable=False))
        batch_op.create_index('ix_point_entries_period', ['kind', 'created_at', 'member_id'], unique=False)
    # Entries written before kinds existed, told apart by their keys.
    op.execute("UPDATE point_entries SET kind = 'expire' WHERE key LIKE 'expire:%'")
    op.execute("UPDATE point_entries SET kind = 'refund' WHERE key LIKE 'refund:%'")
    op.execute("UPDATE point_entries SET kind = 'spend' WHERE delta < 0 AND kind = 'earn'")

    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('available_at', storage.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.alter_column('status',
               existing_type=sa.VARCHAR(length=16),
               type_=sqlmodel.sql.sqltypes.AutoString(length=20),
               existing_nullable=False)

    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('starts_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ends_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('approval', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('fulfilment', sqlmodel.sql.sqltypes.AutoString(length=8), server_default='manual', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_column('fulfilment')
        batch_op.drop_column('approval')
        batch_op.drop_column('ends_at')
        batch_op.drop_column('starts_at')
        batch_op.drop_column('min_level')

    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.alter_column('status',
               existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
               type_=sa.VARCHAR(length=16),
               existing_nullable=False)
        batch_op.drop_column('code')

    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.drop_column('available_at')

    with op.batch_alter_table('point_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_point_entries_period')
        batch_op.drop_column('kind')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_stage'))
        batch_op.drop_column('stage')

    with op.batch_alter_table('point_balances', schema=None) as batch_op:
        batch_op.drop_constraint('ck_point_balances_pending_not_negative', type_='check')
        batch_op.drop_column('pending')

    with op.batch_alter_table('reward_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_reward_codes_free')

    op.drop_table('reward_codes')
    op.drop_table('poll_votes')
    with op.batch_alter_table('polls', schema=None) as batch_op:
        batch_op.drop_index('ix_polls_status')

    op.drop_table('polls')
    op.drop_table('announcements')
