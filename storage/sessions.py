"""Sessions of the operators' console, kept server-side: signing out or removing a user ends
their sessions at once (the cookie only names the session)."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import rowcount, table_of
from storage.types import utc_field


class ConsoleSession(SQLModel, table=True):
    """A console sign-in: valid until it expires or is revoked."""

    __tablename__ = "console_sessions"

    id: str = Field(max_length=64, primary_key=True)  # random, the cookie's (signed) content
    user: str = Field(max_length=64, index=True)
    created_at: datetime = utc_field()
    expires_at: datetime = utc_field()
    revoked_at: datetime | None = utc_field(default=None)


T = table_of(ConsoleSession)


async def open_session(session: AsyncSession, user: str, *, now: datetime, lifetime: timedelta) -> str:
    """A new session of ``user`` valid for ``lifetime``; its id (unguessable: 256 random bits)."""
    sid = secrets.token_urlsafe(32)
    await session.execute(insert(T).values(id=sid, user=user, created_at=now, expires_at=now + lifetime))
    return sid


async def user_of(session: AsyncSession, sid: str, *, now: datetime) -> str | None:
    """The user of session ``sid`` if it is neither revoked nor expired: one primary-key read,
    made on every console request (a revocation by any process holds at once)."""
    return (await session.execute(select(T.c.user).where(
        T.c.id == sid, T.c.revoked_at.is_(None), T.c.expires_at > now))).scalar_one_or_none()


async def revoke(session: AsyncSession, sid: str, *, now: datetime) -> bool:
    """End one session (signing out); whether it was still open."""
    return rowcount(await session.execute(
        update(T).where(T.c.id == sid, T.c.revoked_at.is_(None)).values(revoked_at=now))) > 0


async def revoke_user(session: AsyncSession, user: str, *, now: datetime) -> int:
    """End every open session of ``user`` (removed from the config); how many."""
    return rowcount(await session.execute(
        update(T).where(T.c.user == user, T.c.revoked_at.is_(None)).values(revoked_at=now)))


async def delete_ended(session: AsyncSession, *, now: datetime) -> int:
    """Delete the sessions that expired or were revoked (they refuse their cookie either way)."""
    return rowcount(await session.execute(
        delete(T).where(or_(T.c.revoked_at.is_not(None), T.c.expires_at <= now))))
