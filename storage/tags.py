"""Member tags: from the channel code a member came by, or given by operators."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for


class MemberTag(SQLModel, table=True):
    """A tag on a member: from the channel code they came by, or given by an operator."""

    __tablename__ = "member_tags"

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    tag: str = Field(sa_column=Column(String(64), primary_key=True))
    source: str = Field(max_length=32)  # channel_code | operator | ...
    created_at: datetime = utc_field()


T = table_of(MemberTag)


async def add(session: AsyncSession, member_id: int, tags: Iterable[str], *, source: str, now: datetime) -> None:
    """Tag the member; a tag already there stays as it was (with its first source)."""
    rows = [{"member_id": member_id, "tag": t, "source": source, "created_at": now} for t in dict.fromkeys(tags)]
    if rows:
        stmt = insert_for(session, T).on_conflict_do_nothing(index_elements=[T.c.member_id, T.c.tag])
        await session.execute(stmt, rows)


async def of_member(session: AsyncSession, member_id: int) -> list[str]:
    rows = await session.execute(select(T.c.tag).where(T.c.member_id == member_id).order_by(T.c.created_at, T.c.tag))
    return [r.tag for r in rows]


async def remove(session: AsyncSession, member_id: int, tags: Iterable[str], *, source: str | None = None) -> None:
    """Untag the member; with ``source``, only tags that source gave (an operator's tag stays)."""
    query = delete(T).where(T.c.member_id == member_id, T.c.tag.in_(list(tags)))
    await session.execute(query.where(T.c.source == source) if source is not None else query)
