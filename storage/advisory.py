"""PostgreSQL advisory locks held for a transaction: work that several processes may start at
the same moment (refreshing a token, counting a quota and planning against it) is done by one
at a time; the others wait, then see what it committed. SQLite has one writer and one process:
nothing to take there."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def lock(session: AsyncSession, key: str) -> None:
    """Hold the lock named ``key`` until the session's transaction ends."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
