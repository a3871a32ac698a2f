"""The inbox: every inbound update's dedup key, and for ack-first channels its payload.

A repeat of an update (a platform retry) hits the unique key and is dropped here.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class InboundUpdate(SQLModel, table=True):
    """One row per inbound update, keyed by its dedup key: a repeat cannot be inserted twice.

    Channels that answer before handling (WeCom) store the payload and set ``handled_at`` later,
    so a restart resumes exactly the unhandled rows.
    """

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_unhandled", "handled_at", "id"),)

    id: int = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True,
    ))
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    channel: str = Field(max_length=32)
    received_at: datetime = utc_field()
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    handled_at: datetime | None = utc_field(default=None)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Handling attempts that failed: bounded, then the row is closed with its error.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


T = table_of(InboundUpdate)


async def claim(
    session: AsyncSession, key: str, channel: str, *, now: datetime,
    payload: str | None = None, handled: bool = False, error: str | None = None,
) -> bool:
    """Insert the update's key; False when it was seen before (a repeat to drop)."""
    stmt = insert_for(session, T).values(
        key=key, channel=channel, received_at=now, payload=payload, handled_at=now if handled else None,
        error=error,
    ).on_conflict_do_nothing(index_elements=[T.c.key]).returning(T.c.id)
    return (await session.execute(stmt)).first() is not None


async def begin_handling(
    session: AsyncSession, keys: dict[str, str], *, now: datetime, stored: frozenset[str] = frozenset(),
) -> set[str]:
    """Of ``keys`` (key → channel), those this transaction should handle: new ones, and ones an
    ack-first channel stored that nobody has handled yet (``stored`` names those expected to be
    stored, to skip an insert bound to conflict). The conditional UPDATE row-locks, so two
    workers racing for one stored update cannot both win. The rest are repeats."""
    if not keys:
        return set()
    fresh: set[str] = set()
    rows = [{"key": k, "channel": c, "received_at": now, "handled_at": now}
            for k, c in sorted(keys.items()) if k not in stored]
    if rows:
        stmt = insert_for(session, T).on_conflict_do_nothing(index_elements=[T.c.key]).returning(T.c.key)
        fresh = {r.key for r in await session.execute(stmt, rows)}
    seen = [k for k in keys if k not in fresh]
    if seen:
        taken = await session.execute(
            update(T).where(T.c.key.in_(seen), T.c.handled_at.is_(None)).values(handled_at=now).returning(T.c.key)
        )
        fresh.update(r.key for r in taken)
    return fresh


async def seen(session: AsyncSession, key: str) -> bool:
    """Whether an update with this key was stored before."""
    return (await session.execute(select(T.c.id).where(T.c.key == key))).first() is not None


async def mark_handled(session: AsyncSession, key: str, *, now: datetime, error: str | None = None) -> None:
    await session.execute(update(T).where(T.c.key == key).values(handled_at=now, error=error))


async def store(session: AsyncSession, rows: list[tuple[str, str, str]], *, now: datetime) -> set[str]:
    """Store ``(key, channel, payload)`` rows of an ack-first channel, unhandled; return the keys
    that are new (the others are platform retries of something already stored)."""
    if not rows:
        return set()
    stmt = insert_for(session, T).on_conflict_do_nothing(index_elements=[T.c.key]).returning(T.c.key)
    params = [{"key": k, "channel": c, "payload": p, "received_at": now} for k, c, p in rows]
    return {r.key for r in await session.execute(stmt, params)}


async def unhandled_counts(session: AsyncSession) -> dict[str, int]:
    """Stored but not yet handled, by channel: the inbox's depth (``/metrics``). Found through
    the unhandled index, so a scrape costs the backlog, not the history."""
    rows = await session.execute(select(T.c.channel, func.count()).where(T.c.handled_at.is_(None))
                                 .group_by(T.c.channel))
    return {channel: n for channel, n in rows}


async def oldest_unhandled(session: AsyncSession) -> dict[str, datetime]:
    """When the oldest update stored but not yet handled arrived, by channel (``/metrics``:
    how far behind handling is). Through the unhandled index, like ``unhandled_counts``."""
    rows = await session.execute(select(T.c.channel, func.min(T.c.received_at)).where(T.c.handled_at.is_(None))
                                 .group_by(T.c.channel))
    return {channel: at for channel, at in rows}


async def unhandled(
    session: AsyncSession, *, channel: str | None = None, received_before: datetime | None = None, limit: int = 100,
) -> list[InboundUpdate]:
    """Stored but not yet handled, oldest first (what a restart must resume)."""
    query = select(InboundUpdate).where(col(InboundUpdate.handled_at).is_(None))
    if channel is not None:
        query = query.where(col(InboundUpdate.channel) == channel)
    if received_before is not None:
        query = query.where(col(InboundUpdate.received_at) < received_before)
    rows = await session.execute(query.order_by(col(InboundUpdate.id)).limit(limit))
    return list(rows.scalars())


async def note_failure(session: AsyncSession, key: str, *, error: str, now: datetime, max_attempts: int) -> bool:
    """Count a failed handling attempt; at ``max_attempts`` close the row with its error.
    True when the row was closed (given up)."""
    await session.execute(update(T).where(T.c.key == key).values(attempts=T.c.attempts + 1, error=error))
    closed = await session.execute(
        update(T).where(T.c.key == key, T.c.attempts >= max_attempts, T.c.handled_at.is_(None))
        .values(handled_at=now, error=f"gave up after {max_attempts} attempts: {error}")
    )
    return rowcount(closed) > 0


async def delete_handled(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` rows handled before ``before`` (oldest first, by ix_inbox_unhandled);
    how many. Rows never handled stay: they are what a restart resumes."""
    oldest = select(T.c.id).where(T.c.handled_at.is_not(None), T.c.handled_at < before).order_by(
        T.c.handled_at).limit(limit)
    return rowcount(await session.execute(delete(T).where(T.c.id.in_(oldest))))
