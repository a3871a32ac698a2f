"""task_checkins.photo: the stored name of a photo a member uploaded as a check-in's proof

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('task_checkins', schema=None) as batch_op:
        batch_op.drop_column('photo')
