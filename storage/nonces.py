"""Nonces of signed requests (the bridge's), seen once across every process: a replay within
the replay window is refused wherever it arrives; nonces older than the window are let go."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class SeenNonce(SQLModel, table=True):
    """A nonce a channel has accepted, with when."""

    __tablename__ = "seen_nonces"
    __table_args__ = (Index("ix_seen_nonces_at", "seen_at"),)

    channel: str = Field(max_length=32, primary_key=True)
    nonce: str = Field(max_length=128, primary_key=True)
    seen_at: datetime = utc_field()


T = table_of(SeenNonce)


async def claim(session: AsyncSession, channel: str, nonce: str, *, now: datetime) -> bool:
    """True the first time ``channel`` sees ``nonce`` (in this process or any other); False for a
    replay. One statement: two processes given the same nonce at once cannot both claim it."""
    stmt = insert_for(session, T).values(channel=channel, nonce=nonce, seen_at=now)
    stmt = stmt.on_conflict_do_nothing(index_elements=[T.c.channel, T.c.nonce]).returning(T.c.nonce)
    return (await session.execute(stmt)).first() is not None


async def forget(session: AsyncSession, channel: str, *, before: datetime) -> int:
    """Let go of the nonces seen before ``before`` (a replay that old fails its timestamp check)."""
    return rowcount(await session.execute(delete(T).where(T.c.channel == channel, T.c.seen_at < before)))
