"""The inbox: every inbound update's dedup key, and for ack-first channels its payload.

A repeat of an update (a platform retry) hits the unique key and is dropped here.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboundUpdate
from storage.upsert import insert_for

T = InboundUpdate.__table__


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


async def begin_handling(session: AsyncSession, keys: dict[str, str], *, now: datetime) -> set[str]:
    """Of ``keys`` (key → channel), those this transaction should handle: new ones, and ones an
    ack-first channel stored that nobody has handled yet. The conditional UPDATE row-locks, so
    two workers racing for one stored update cannot both win. The rest are repeats."""
    if not keys:
        return set()
    stmt = insert_for(session, T).values(
        [{"key": k, "channel": c, "received_at": now, "handled_at": now} for k, c in sorted(keys.items())]
    ).on_conflict_do_nothing(index_elements=[T.c.key]).returning(T.c.key)
    fresh = {r.key for r in await session.execute(stmt)}
    seen = [k for k in keys if k not in fresh]
    if seen:
        taken = await session.execute(
            update(T).where(T.c.key.in_(seen), T.c.handled_at.is_(None)).values(handled_at=now).returning(T.c.key)
        )
        fresh.update(r.key for r in taken)
    return fresh


async def mark_handled(session: AsyncSession, key: str, *, now: datetime, error: str | None = None) -> None:
    await session.execute(update(T).where(T.c.key == key).values(handled_at=now, error=error))


async def unhandled(session: AsyncSession, *, limit: int = 100) -> list[InboundUpdate]:
    """Stored but not yet handled, oldest first (what a restart must resume)."""
    rows = await session.execute(
        select(InboundUpdate).where(InboundUpdate.handled_at.is_(None)).order_by(InboundUpdate.id).limit(limit)
    )
    return list(rows.scalars())
