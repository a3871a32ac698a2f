"""Idempotency keys of the REST API: a creating request sent again with the same
``Idempotency-Key`` gets the first answer again instead of creating twice (a proxy's retry, a
client's double click); the same key with another request is refused."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Index, Text, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class IdempotencyKey(SQLModel, table=True):
    """A creating request already answered, by (client, key)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    # Who sent it (``api:<token name>``): each client has its own keys.
    actor: str = Field(max_length=160, primary_key=True)
    key: str = Field(max_length=200, primary_key=True)
    # A digest of the method, path and body: the same key with another request is a mistake.
    request_hash: str = Field(max_length=64)
    status: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_field()


K = table_of(IdempotencyKey)
# How long a key is kept: a retry comes within seconds, a client's second try within hours.
RETENTION = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a request under a key was answered (``request_hash`` to tell a repeat from another request)."""

    request_hash: str
    status: int
    body: str


async def claim(session: AsyncSession, actor: str, key: str, request_hash: str, *, now: datetime) -> Answer | None:
    """Claim ``key`` for a request, first thing in the transaction that makes its change: None
    for the first request (which then ``save``s its answer in that transaction); the first
    answer for a later one. A later request racing the first on PostgreSQL waits here on the
    first's uncommitted row (the primary key's insert) and reads its answer once it commits;
    had the first rolled back, the later one claims the key instead. On SQLite the write
    transactions take turns, so the later one finds the row committed."""
    insert = insert_for(session, K).values(actor=actor, key=key, request_hash=request_hash, status=0, body="",
                                           created_at=now)
    insert = insert.on_conflict_do_nothing(index_elements=[K.c.actor, K.c.key]).returning(K.c.key)
    for _ in range(2):  # the row may be pruned between the conflict and the read: then claim it again
        if (await session.execute(insert)).first() is not None:
            return None
        row = (await session.execute(select(K.c.request_hash, K.c.status, K.c.body)
                                     .where(K.c.actor == actor, K.c.key == key))).first()
        if row is not None:
            return Answer(row.request_hash, int(row.status), row.body)
    raise RuntimeError(f"idempotency key {key!r} of {actor} neither claimed nor found")


async def save(session: AsyncSession, actor: str, key: str, *, status: int, body: str) -> None:
    """The answer of the request that claimed ``key``, in the transaction of its change."""
    await session.execute(update(K).where(K.c.actor == actor, K.c.key == key).values(status=status, body=body))


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Drop the keys claimed before ``before``; how many."""
    return rowcount(await session.execute(delete(K).where(K.c.created_at < before)))
