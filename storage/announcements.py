"""Things done once (a member's day-N message): the job claims a key in the transaction that
queues the message, so a restart or a second process never repeats it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Announcement
from storage.upsert import insert_for

A = Announcement.__table__


async def claim(session: AsyncSession, key: str, *, now: datetime) -> bool:
    """True for the first caller; False if ``key`` was announced already (by this process
    before a restart, or by another process)."""
    stmt = insert_for(session, A).values(key=key, at=now).on_conflict_do_nothing(index_elements=[A.c.key])
    return (await session.execute(stmt.returning(A.c.key))).first() is not None

