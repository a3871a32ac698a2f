"""operator roles and playbook states

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 23:03:31.573836
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('operator_roles',
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('granted_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'external_id')
    )
    op.create_table('playbook_states',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('changed_by', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('changed_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('playbook_states')
    op.drop_table('operator_roles')
