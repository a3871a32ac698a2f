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
    """A role (viewer, operator, admin) held by an identity: a channel and the id it knows
    someone by (DESIGN §11: ids are chosen by platforms and sometimes by users, so a role never
    belongs to a bare id)."""

    __tablename__ = "operator_roles"

    channel: str = Field(max_length=32, primary_key=True)
    external_id: str = Field(max_length=128, primary_key=True)
    role: str = Field(max_length=16)
    granted_by: str = Field(max_length=160)
    granted_at: datetime = utc_field()


T = table_of(OperatorRole)
ORDER = ("member", "viewer", "operator", "admin")
# Who granted the admins of ``[operators] admins``: those rows follow the config at every start.
CONFIG = "config"


async def role_of(session: AsyncSession, channel: str, external_id: str) -> str:
    """The role of the identity (``channel``, ``external_id``); ``member`` if none."""
    held = (await session.execute(select(T.c.role).where(
        T.c.channel == channel, T.c.external_id == external_id))).scalar_one_or_none()
    return held or "member"


async def grant(session: AsyncSession, channel: str, external_id: str, role: str, *, by: str, now: datetime) -> None:
    stmt = insert_for(session, T).values(channel=channel, external_id=external_id, role=role, granted_by=by,
                                         granted_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[T.c.channel, T.c.external_id],
                                                     set_={"role": role, "granted_by": by, "granted_at": now}))


async def revoke(session: AsyncSession, channel: str, external_id: str) -> int:
    """Remove the identity's role; how many were removed (0 or 1)."""
    done = await session.execute(delete(T).where(T.c.channel == channel, T.c.external_id == external_id))
    return rowcount(done)


async def all_roles(session: AsyncSession) -> list[OperatorRole]:
    return list((await session.execute(select(OperatorRole).order_by(col(OperatorRole.granted_at)))).scalars())


async def seed_admins(session: AsyncSession, admins: Iterable[tuple[str, str]], *, now: datetime) -> None:
    """The config's admins, as (channel, id), are admins, again at every start; an admin removed
    from the config is one no more (a role granted in chat stays as it was granted)."""
    await session.execute(delete(T).where(T.c.granted_by == CONFIG))
    for channel, external_id in admins:
        await grant(session, channel, external_id, "admin", by=CONFIG, now=now)
