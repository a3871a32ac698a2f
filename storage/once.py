"""The do-once ledger: a job that must do a thing once (a member's day-N message, a report, an
alert) claims its key in the transaction that does it, so a restart or a second process never
repeats it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for


class OnceKey(SQLModel, table=True):
    """A thing done once: its key (``sop:入群次日:member:42``), claimed in the same transaction as
    what it does. (Stored under its first name, announcements.)"""

    __tablename__ = "announcements"

    key: str = Field(max_length=200, primary_key=True)
    at: datetime = utc_field()


A = table_of(OnceKey)


async def claim(session: AsyncSession, key: str, *, now: datetime) -> bool:
    """True for the first caller; False if ``key`` was claimed already (by this process
    before a restart, or by another process)."""
    stmt = insert_for(session, A).values(key=key, at=now).on_conflict_do_nothing(index_elements=[A.c.key])
    return (await session.execute(stmt.returning(A.c.key))).first() is not None



async def claimed(session: AsyncSession, key: str) -> bool:
    """Whether ``key`` was claimed (a read before deciding whether there is work at all)."""
    return (await session.execute(select(A.c.key).where(A.c.key == key))).first() is not None
