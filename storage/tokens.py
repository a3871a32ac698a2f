"""Platform access tokens, shared by every process through the database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for


class AccessToken(SQLModel, table=True):
    """Platform access tokens, shared by every process so only one of them asks for a new one."""

    __tablename__ = "access_tokens"

    key: str = Field(primary_key=True, max_length=200)  # corp id + a digest of the secret, never the secret
    token: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = utc_field()


T = table_of(AccessToken)


async def get(session: AsyncSession, key: str) -> tuple[str, datetime] | None:
    row = (await session.execute(select(T.c.token, T.c.expires_at).where(T.c.key == key))).first()
    return (row.token, row.expires_at) if row else None


async def put(session: AsyncSession, key: str, token: str, *, expires_at: datetime) -> None:
    stmt = insert_for(session, T).values(key=key, token=token, expires_at=expires_at)
    await session.execute(stmt.on_conflict_do_update(index_elements=[T.c.key],
                                                     set_={"token": token, "expires_at": expires_at}))


async def expire(session: AsyncSession, key: str, token: str, *, now: datetime) -> None:
    """The platform refused ``token``: expire it, unless someone already replaced it."""
    await session.execute(update(T).where(T.c.key == key, T.c.token == token).values(expires_at=now))
