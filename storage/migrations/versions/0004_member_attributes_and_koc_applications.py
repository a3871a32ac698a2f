"""member attributes and KOC applications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 20:49:46.612712
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('koc_applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('recommended_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('approved_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('koc_applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_koc_applications_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_koc_applications_status', ['status', 'created_at'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attributes', sa.JSON(), server_default='{}', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('attributes')

    with op.batch_alter_table('koc_applications', schema=None) as batch_op:
        batch_op.drop_index('ix_koc_applications_status')
        batch_op.drop_index(batch_op.f('ix_koc_applications_member_id'))

    op.drop_table('koc_applications')
