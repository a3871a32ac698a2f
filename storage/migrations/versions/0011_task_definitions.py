"""task definitions

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 23:12:13.522356
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_definitions',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('per_day', sa.Integer(), nullable=False),
    sa.Column('per_week', sa.Integer(), nullable=False),
    sa.Column('per_month', sa.Integer(), nullable=False),
    sa.Column('proof', sa.Boolean(), nullable=False),
    sa.Column('approval', sa.Boolean(), nullable=False),
    sa.Column('pending_days', sa.Integer(), nullable=False),
    sa.Column('koc_types', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('task_definitions')
