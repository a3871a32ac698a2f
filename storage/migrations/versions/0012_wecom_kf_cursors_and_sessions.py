"""wecom kf cursors and sessions

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22 23:26:07.528257
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kf_cursors',
    sa.Column('open_kfid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cursor', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('open_kfid')
    )
    op.create_table('kf_sessions',
    sa.Column('external_userid', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('open_kfid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('last_inbound_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_since', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('external_userid')
    )


def downgrade() -> None:
    op.drop_table('kf_sessions')
    op.drop_table('kf_cursors')
