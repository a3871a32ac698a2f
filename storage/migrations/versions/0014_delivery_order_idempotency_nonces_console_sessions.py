"""hardening: delivery order, API idempotency keys, seen nonces, console sessions

The outbox's delivery order (``delivered_seq``; on PostgreSQL drawn from the sequence
``outbox_delivered_seq``), the REST API's idempotency keys, the nonces signed requests used (kept
across processes), and the console's server-side sessions. Admins seeded on every channel (the
channel ``*``) are dropped: ``[operators] admins`` now name their channel, and are seeded again
at start.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 11:41:09.591755
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.types


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user'), ['user'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('actor', 'key')
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_created', ['created_at'], unique=False)

    op.create_table('seen_nonces',
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('seen_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'nonce')
    )
    with op.batch_alter_table('seen_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_seen_nonces_at', ['seen_at'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_outbox_delivered', ['channel', 'delivered_seq'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Several processes deliver at once: the order comes from one sequence.
        op.execute("CREATE SEQUENCE outbox_delivered_seq")
    # A role on every channel let anyone who took an admin's id on any channel act as them.
    op.execute("DELETE FROM operator_roles WHERE channel = '*'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE outbox_delivered_seq")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_delivered')
        batch_op.drop_column('delivered_seq')

    with op.batch_alter_table('seen_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_seen_nonces_at')

    op.drop_table('seen_nonces')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_created')

    op.drop_table('idempotency_keys')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user'))

    op.drop_table('console_sessions')
