"""Operators' roles, stored so that a grant or a revocation takes effect at the next command."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class OperatorRole(SQLModel, table=True):
    """A role (viewer, operator, admin) held by someone as a channel knows them; channel ``*``:
    on every channel (the admins seeded from ``[operators] admins``)."""

    __tablename__ = "operator_roles"

    channel: str = Field(max_length=32, primary_key=True)
    external_id: str = Field(max_length=128, primary_key=True)
    role: str = Field(max_length=16)
    granted_by: str = Field(max_length=160)
    granted_at: datetime = utc_field()


T = table_of(OperatorRole)
ANY_CHANNEL = "*"
ORDER = ("member", "viewer", "operator", "admin")


async def role_of(session: AsyncSession, channel: str, external_id: str) -> str:
    """The strongest role held on ``channel`` or on every channel; ``member`` if none."""
    held = (await session.execute(select(T.c.role).where(
        T.c.external_id == external_id, T.c.channel.in_((channel, ANY_CHANNEL))))).scalars().all()
    return max(held, key=ORDER.index, default="member")


async def grant(session: AsyncSession, channel: str, external_id: str, role: str, *, by: str, now: datetime) -> None:
    stmt = insert_for(session, T).values(channel=channel, external_id=external_id, role=role, granted_by=by,
                                         granted_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[T.c.channel, T.c.external_id],
                                                     set_={"role": role, "granted_by": by, "granted_at": now}))


async def revoke(session: AsyncSession, channel: str, external_id: str) -> int:
    """Remove the person's roles on ``channel`` and on every channel; how many were removed."""
    done = await session.execute(delete(T).where(T.c.external_id == external_id,
                                                 T.c.channel.in_((channel, ANY_CHANNEL))))
    return rowcount(done)


async def all_roles(session: AsyncSession) -> list[OperatorRole]:
    return list((await session.execute(select(OperatorRole).order_by(col(OperatorRole.granted_at)))).scalars())


async def seed_admins(session: AsyncSession, admins: Iterable[str], *, now: datetime) -> None:
    """The config's admins hold admin on every channel (again at every start)."""
    for external_id in admins:
        await grant(session, ANY_CHANNEL, external_id, "admin", by="config", now=now)
