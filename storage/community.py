"""Members, groups and who is in which group: upserts that keep activity counters true.

These run on every inbound update, so they take a whole batch of updates at once: one
multi-row statement per table, however many updates the batch holds (group commit, DESIGN §9).
They pass the rows as executemany parameters, which SQLAlchemy sends as one multi-row INSERT
and compiles once; a ``.values([...])`` statement would be compiled again for every batch.
On PostgreSQL the member upsert also locks the members' rows until the transaction ends, which
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

Key = tuple[str, str]  # (channel, external_id)


@dataclass(frozen=True, slots=True)
class MemberRef:
    id: int
    channel: str
    external_id: str
    name: str | None
    status: str
    message_count: int = 0  # including this batch's messages


@dataclass(frozen=True, slots=True)
class GroupRef:
    id: int
    channel: str
    external_id: str
    name: str | None


@dataclass(slots=True)
class Sighting:
    """What one batch saw of a member or group: merged before the upsert."""

    name: str | None = None
    messages: int = 0
    source_state: str | None = None

    def add(self, *, name: str | None, spoke: bool, source_state: str | None = None) -> None:
        self.name = name or self.name
        self.messages += spoke
        self.source_state = self.source_state or source_state


async def touch_members(session: AsyncSession, seen: dict[Key, Sighting], *, now: datetime) -> dict[Key, MemberRef]:
    """Create the members or refresh what we know; add the messages they sent."""
    if not seen:
        return {}
    # Sorted keys: concurrent transactions lock rows in one order, so they cannot deadlock.
    rows = [
        {"channel": c, "external_id": e, "name": s.name, "source_state": s.source_state, "status": "active",
         "message_count": s.messages, "first_seen_at": now, "last_seen_at": now}
        for (c, e), s in sorted(seen.items())
    ]
    stmt = insert_for(session, M)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[M.c.channel, M.c.external_id],
        set_={
            "name": func.coalesce(ex.name, M.c.name),
            "source_state": func.coalesce(M.c.source_state, ex.source_state),
            "last_seen_at": ex.last_seen_at,
            "message_count": M.c.message_count + ex.message_count,
        },
    ).returning(M.c.id, M.c.channel, M.c.external_id, M.c.name, M.c.status, M.c.message_count)
    return {(r.channel, r.external_id): MemberRef(r.id, r.channel, r.external_id, r.name, r.status, r.message_count)
            for r in await session.execute(stmt, rows)}


async def touch_groups(session: AsyncSession, seen: dict[Key, Sighting], *, now: datetime) -> dict[Key, GroupRef]:
    if not seen:
        return {}
    rows = [
        {"channel": c, "external_id": e, "name": s.name, "status": "active", "message_count": s.messages,
         "created_at": now, "last_active_at": now}
        for (c, e), s in sorted(seen.items())
    ]
    stmt = insert_for(session, G)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[G.c.channel, G.c.external_id],
        set_={
            "name": func.coalesce(ex.name, G.c.name),
            "last_active_at": ex.last_active_at,
            "message_count": G.c.message_count + ex.message_count,
        },
    ).returning(G.c.id, G.c.channel, G.c.external_id, G.c.name)
    return {(r.channel, r.external_id): GroupRef(r.id, r.channel, r.external_id, r.name)
            for r in await session.execute(stmt, rows)}


async def record_spoken(session: AsyncSession, counts: dict[tuple[int, int], int], *, now: datetime) -> None:
    """Members spoke in groups ((group_id, member_id) → messages): they are in those groups, even
    if we missed the join, and active."""
    if not counts:
        return
    rows = [{"group_id": g, "member_id": m, "joined_at": now, "last_spoke_at": now, "message_count": n}
            for (g, m), n in sorted(counts.items())]
    stmt = insert_for(session, GM)
    stmt = stmt.on_conflict_do_update(
        index_elements=[GM.c.group_id, GM.c.member_id],
        set_={"last_spoke_at": stmt.excluded.last_spoke_at,
              "message_count": GM.c.message_count + stmt.excluded.message_count, "left_at": None},
    )
    await session.execute(stmt, rows)


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


async def set_member_status(session: AsyncSession, member_id: int, status: str, *, now: datetime) -> None:
    """``active`` or ``lost`` (the contact was deleted on either side), with when it was lost."""
    await session.execute(update(M).where(M.c.id == member_id).values(status=status, lost_at=now if status == "lost" else None))


async def group_by_external(session: AsyncSession, channel: str, external_id: str) -> Group | None:
    return (await session.execute(
        select(Group).where(Group.channel == channel, Group.external_id == external_id)
    )).scalar_one_or_none()


async def update_group(session: AsyncSession, group_id: int, **values: object) -> None:
    """Set name, owner, member_version or status of a group."""
    allowed = {"name", "owner", "member_version", "status"}
    if set(values) - allowed:
        raise ValueError(f"cannot set {sorted(set(values) - allowed)} on a group")
    await session.execute(update(G).where(G.c.id == group_id).values(**values))


async def reconcile_members(
    session: AsyncSession, group_id: int, member_ids: set[int], *, now: datetime,
) -> tuple[int, int]:
    """Make the group's membership exactly ``member_ids`` (from the platform's own list);
    return how many were added and removed. Used after a missed or out-of-order event."""
    current = {r.member_id for r in await session.execute(
        select(GM.c.member_id).where(GM.c.group_id == group_id, GM.c.left_at.is_(None))
    )}
    for member_id in sorted(member_ids - current):
        await record_join(session, group_id, member_id, now=now)
    gone = sorted(current - member_ids)
    if gone:
        await session.execute(
            update(GM).where(GM.c.group_id == group_id, GM.c.member_id.in_(gone), GM.c.left_at.is_(None)).values(left_at=now)
        )
    return len(member_ids - current), len(gone)


async def attributes(session: AsyncSession, member_id: int) -> dict[str, object]:
    return dict((await session.execute(select(M.c.attributes).where(M.c.id == member_id))).scalar_one() or {})


async def set_attributes(session: AsyncSession, member_id: int, values: dict[str, object]) -> None:
    """Merge ``values`` into the member's profile attributes."""
    current = await attributes(session, member_id)
    await session.execute(update(M).where(M.c.id == member_id).values(attributes={**current, **values}))


async def active_groups(session: AsyncSession) -> list[Group]:
    """Every group siyu is still in, oldest first."""
    return list((await session.execute(select(Group).where(Group.status == "active").order_by(Group.id))).scalars())
