"""Announcements made once: a job claims its key in the transaction that queues the messages."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Announcement
from storage.upsert import insert_for

A = Announcement.__table__


async def claim(session: AsyncSession, key: str, *, now: datetime) -> bool:
    """True for the first caller; False if ``key`` was announced already (by this process
    before a restart, or by another process)."""
    stmt = insert_for(session, A).values(key=key, messages=0, at=now).on_conflict_do_nothing(index_elements=[A.c.key])
    return (await session.execute(stmt.returning(A.c.key))).first() is not None


async def made(session: AsyncSession, key: str) -> bool:
    return await session.get(Announcement, key) is not None


async def record(session: AsyncSession, key: str, messages: int) -> None:
    """How many messages the claimed announcement queued (for operators' reports)."""
    await session.execute(update(A).where(A.c.key == key).values(messages=messages))
