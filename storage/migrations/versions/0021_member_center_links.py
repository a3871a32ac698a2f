"""member center links: campaigns, visits, and the surface (chat or page) of sign-ins and redemptions

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 06:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_center_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['chat_groups.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('key')
    )
    op.create_table('member_center_visits',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('first_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opens', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['member_center_campaigns.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'member_id', 'campaign_id')
    )
    with op.batch_alter_table('member_center_visits', schema=None) as batch_op:
        batch_op.create_index('ix_member_center_visits_campaign', ['campaign_id', 'day'], unique=False)
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_column('via')
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_column('via')
    with op.batch_alter_table('member_center_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_member_center_visits_campaign')
    op.drop_table('member_center_visits')
    op.drop_table('member_center_campaigns')
