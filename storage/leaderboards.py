"""Leaderboards: members ranked by the points they earned in a period (sign-in, tasks; not
grants, refunds or spending), overall or among a group's current members."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.community import Group, GroupMembership, Member
from storage.points import PointEntry
from storage.sql import table_of

E = table_of(PointEntry)
M = table_of(Member)
GM = table_of(GroupMembership)
G = table_of(Group)


@dataclass(frozen=True, slots=True)
class Place:
    rank: int
    member_id: int
    name: str
    points: int


async def top(session: AsyncSession, *, since: datetime, until: datetime, group_id: int | None = None,
              limit: int = 10) -> list[Place]:
    """The top ``limit`` earners in [since, until); ties share the order of who got there first
    (the lower member id). With ``group_id``, only the group's current members."""
    earned = func.sum(E.c.delta).label("earned")
    # ix_point_entries_period (kind, created_at, member_id) covers the scan of the period.
    query = (select(E.c.member_id, earned)
             .where(E.c.kind == "earn", E.c.created_at >= since, E.c.created_at < until)
             .group_by(E.c.member_id))
    if group_id is not None:
        query = query.join(GM, (GM.c.member_id == E.c.member_id) & (GM.c.group_id == group_id) & GM.c.left_at.is_(None))
    ranked = query.order_by(earned.desc(), E.c.member_id).limit(limit).subquery()
    rows = (await session.execute(
        select(ranked.c.member_id, ranked.c.earned, M.c.name, M.c.external_id)
        .join(M, M.c.id == ranked.c.member_id).order_by(ranked.c.earned.desc(), ranked.c.member_id)
    )).all()
    return [Place(i, r.member_id, r.name or r.external_id, int(r.earned)) for i, r in enumerate(rows, 1)]


async def rank_of(session: AsyncSession, member_id: int, *, since: datetime, until: datetime,
                  group_id: int | None = None) -> tuple[int, int] | None:
    """The member's (rank, points) in [since, until), overall or (``group_id``) among the group's
    current members, ordered as ``top``; None if they earned nothing (or are not in the group)."""
    window = (E.c.kind == "earn", E.c.created_at >= since, E.c.created_at < until)
    per_member = select(E.c.member_id, func.sum(E.c.delta).label("earned")).where(*window)
    if group_id is not None:
        per_member = per_member.join(GM, (GM.c.member_id == E.c.member_id) & (GM.c.group_id == group_id)
                                     & GM.c.left_at.is_(None))
    ranked = per_member.group_by(E.c.member_id).subquery()
    mine = (await session.execute(select(ranked.c.earned).where(ranked.c.member_id == member_id))).scalar_one_or_none()
    if not mine:
        return None
    ahead = (await session.execute(select(func.count()).select_from(ranked).where(
        (ranked.c.earned > mine) | ((ranked.c.earned == mine) & (ranked.c.member_id < member_id))
    ))).scalar_one()
    return int(ahead) + 1, int(mine)


async def groups_of(session: AsyncSession, member_id: int) -> list[Group]:
    """The active groups the member is in now, oldest first: the boards a member center shows."""
    return list((await session.execute(select(Group).join(GM, GM.c.group_id == G.c.id).where(
        GM.c.member_id == member_id, GM.c.left_at.is_(None), G.c.status == "active").order_by(G.c.id))).scalars())
