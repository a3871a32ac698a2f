"""rollup runs: when the console's numbers were last rolled up

The console says "数据更新于 HH:MM" on rolled-up figures; the time the rollup job last finished
is kept in a table of its own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 02:40:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import storage.types


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rollup_runs',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('finished_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('rollup_runs')
