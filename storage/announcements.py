"""Things done once (a member's day-N message): the job claims a key in the transaction that
queues the message, so a restart or a second process never repeats it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.types import utc_field
from storage.upsert import insert_for


class Announcement(SQLModel, table=True):
    """A job's message made once: the key (``sop:入群次日:member:42``) is claimed in the same
    transaction as the message it queues, so a restart or a second process never repeats it."""

    __tablename__ = "announcements"

    key: str = Field(max_length=200, primary_key=True)
    at: datetime = utc_field()



A = Announcement.__table__


async def claim(session: AsyncSession, key: str, *, now: datetime) -> bool:
    """True for the first caller; False if ``key`` was announced already (by this process
    before a restart, or by another process)."""
    stmt = insert_for(session, A).values(key=key, at=now).on_conflict_do_nothing(index_elements=[A.c.key])
    return (await session.execute(stmt.returning(A.c.key))).first() is not None

