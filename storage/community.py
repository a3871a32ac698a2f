"""Members, groups and who is in which group: upserts that keep activity counters true.

Each function is one statement where it can be: these run on every inbound update.
On PostgreSQL the member upsert also locks the member's row until the transaction ends, which
is what serializes two updates of one member across processes (DESIGN §4).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Group, GroupMembership, Member
from storage.upsert import insert_for

M = Member.__table__
G = Group.__table__
GM = GroupMembership.__table__


@dataclass(frozen=True, slots=True)
class MemberRef:
    id: int
    channel: str
    external_id: str
    name: str | None
    status: str


@dataclass(frozen=True, slots=True)
class GroupRef:
    id: int
    channel: str
    external_id: str
    name: str | None


async def touch_member(
    session: AsyncSession, channel: str, external_id: str, *, now: datetime,
    name: str | None = None, spoke: bool = False, source_state: str | None = None,
) -> MemberRef:
    """Create the member or refresh what we know; count a message when ``spoke``."""
    stmt = insert_for(session, M).values(
        channel=channel, external_id=external_id, name=name, source_state=source_state,
        status="active", message_count=1 if spoke else 0, first_seen_at=now, last_seen_at=now,
    )
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[M.c.channel, M.c.external_id],
        set_={
            "name": func.coalesce(ex.name, M.c.name),
            "source_state": func.coalesce(M.c.source_state, ex.source_state),
            "last_seen_at": ex.last_seen_at,
            "message_count": M.c.message_count + ex.message_count,
        },
    ).returning(M.c.id, M.c.name, M.c.status)
    row = (await session.execute(stmt)).one()
    return MemberRef(row.id, channel, external_id, row.name, row.status)


async def touch_group(
    session: AsyncSession, channel: str, external_id: str, *, now: datetime,
    name: str | None = None, spoke: bool = False,
) -> GroupRef:
    stmt = insert_for(session, G).values(
        channel=channel, external_id=external_id, name=name, status="active",
        message_count=1 if spoke else 0, created_at=now, last_active_at=now,
    )
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[G.c.channel, G.c.external_id],
        set_={
            "name": func.coalesce(ex.name, G.c.name),
            "last_active_at": ex.last_active_at,
            "message_count": G.c.message_count + ex.message_count,
        },
    ).returning(G.c.id, G.c.name)
    row = (await session.execute(stmt)).one()
    return GroupRef(row.id, channel, external_id, row.name)


async def record_spoke(session: AsyncSession, group_id: int, member_id: int, *, now: datetime) -> None:
    """A member spoke in a group: they are in it (even if we missed the join) and active."""
    stmt = insert_for(session, GM).values(
        group_id=group_id, member_id=member_id, joined_at=now, last_spoke_at=now, message_count=1,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[GM.c.group_id, GM.c.member_id],
        set_={"last_spoke_at": now, "message_count": GM.c.message_count + 1, "left_at": None},
    )
    await session.execute(stmt)


async def record_join(session: AsyncSession, group_id: int, member_id: int, *, now: datetime) -> bool:
    """Mark the member as in the group; True when this is a (re)join, False if already in."""
    existing = (await session.execute(
        select(GM.c.left_at).where(GM.c.group_id == group_id, GM.c.member_id == member_id)
    )).first()
    if existing is not None and existing.left_at is None:
        return False
    stmt = insert_for(session, GM).values(group_id=group_id, member_id=member_id, joined_at=now, message_count=0)
    stmt = stmt.on_conflict_do_update(
        index_elements=[GM.c.group_id, GM.c.member_id], set_={"joined_at": now, "left_at": None},
    )
    await session.execute(stmt)
    return True


async def record_leave(session: AsyncSession, group_id: int, member_id: int, *, now: datetime) -> bool:
    """Mark the member as gone from the group; False if they were not in it."""
    result = await session.execute(
        update(GM).where(GM.c.group_id == group_id, GM.c.member_id == member_id, GM.c.left_at.is_(None))
        .values(left_at=now)
    )
    return result.rowcount > 0


async def group_member_count(session: AsyncSession, group_id: int) -> int:
    return (await session.execute(
        select(func.count()).select_from(GM).where(GM.c.group_id == group_id, GM.c.left_at.is_(None))
    )).scalar_one()
