"""WeCom channel: outbox kinds and priorities, member tags, shared access tokens, group owners

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:03:10.590209
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_tokens',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('member_tags',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'tag')
    )
    with op.batch_alter_table('chat_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.add_column(sa.Column('member_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        # Existing rows are plain texts of normal priority.
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='text'))
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('meta', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.drop_index(batch_op.f('ix_outbox_due'))
        batch_op.create_index('ix_outbox_due', ['status', 'priority', 'not_before'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index(batch_op.f('ix_outbox_due'), ['status', 'not_before'], unique=False)
        batch_op.drop_column('meta')
        batch_op.drop_column('priority')
        batch_op.drop_column('kind')

    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_column('attempts')

    with op.batch_alter_table('chat_groups', schema=None) as batch_op:
        batch_op.drop_column('member_version')
        batch_op.drop_column('owner')

    op.drop_table('member_tags')
    op.drop_table('access_tokens')
