"""rewards.description and rewards.picture: what the member center's points mall shows

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 05:30:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rewards') as batch_op:
        batch_op.add_column(sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(sa.Column('picture', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rewards') as batch_op:
        batch_op.drop_column('picture')
        batch_op.drop_column('description')
