"""Members, groups and who is in which group: upserts that keep activity counters true.

These run on every inbound update, so they take a whole batch of updates at once: one
multi-row statement per table, however many updates the batch holds (group commit, DESIGN §9).
They pass the rows as executemany parameters, which SQLAlchemy sends as one multi-row INSERT
and compiles once; a ``.values([...])`` statement would be compiled again for every batch.
On PostgreSQL the member upsert also locks the members' rows until the transaction ends, which
is what serializes two updates of one member across processes (DESIGN §4).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Row, Table, UniqueConstraint, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for, upsert_for


class Member(SQLModel, table=True):
    """A person the brand talks to, as one channel knows them (sandbox `from`, WeCom userid...)."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_members_channel_external"),
        Index("ix_members_first_seen", "first_seen_at"),  # new members per day (console)
        Index("ix_members_lost", "lost_at"),
    )

    id: int = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: str | None = Field(default=None, max_length=128)
    # The channel code (渠道活码, WeCom's State) the member first came by (stored as source_state).
    channel_code: str | None = Field(default=None, max_length=64,
                                     sa_column_kwargs={"name": "source_state", "key": "channel_code"})
    status: str = Field(default="active", max_length=16)  # active | lost
    lost_at: datetime | None = utc_field(default=None)  # when the contact was deleted (status lost)
    message_count: int = Field(default=0)
    first_seen_at: datetime = utc_field()
    last_seen_at: datetime = utc_field()
    # Lifecycle stage (泛用户 / 精准用户 / 核心用户 / 超级用户), kept by a job (handlers.lifecycle).
    stage: str | None = Field(default=None, max_length=8, index=True)
    # Profile answers (onboarding: city, age ...; consent to receive messages).
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"),
    )


class Group(SQLModel, table=True):
    """A chat group (customer group, internal group, sandbox group)."""

    __tablename__ = "chat_groups"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_chat_groups_channel_external"),)

    id: int = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: str | None = Field(default=None, max_length=128)
    status: str = Field(default="active", max_length=16)  # active | dismissed
    message_count: int = Field(default=0)
    created_at: datetime = utc_field()
    last_active_at: datetime = utc_field()
    # WeCom customer groups: the owner (a staff userid, who confirms mass-send tasks) and the
    # member-list version of the last event applied (a mismatch means one was missed).
    owner: str | None = Field(default=None, max_length=128)
    member_version: str | None = Field(default=None, max_length=64)


class GroupMembership(SQLModel, table=True):
    """Whether a member is in a group, since when, and how much they speak there."""

    __tablename__ = "group_memberships"
    __table_args__ = (Index("ix_group_memberships_left", "left_at"),)

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    member_id: int = Field(sa_column=Column(
        Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True, index=True,
    ))
    joined_at: datetime = utc_field()
    left_at: datetime | None = utc_field(default=None)  # None while the member is in the group
    last_spoke_at: datetime | None = utc_field(default=None)
    message_count: int = Field(default=0)


M = table_of(Member)
G = table_of(Group)
GM = table_of(GroupMembership)

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
    channel_code: str | None = None

    def add(self, *, name: str | None, spoke: bool, channel_code: str | None = None) -> None:
        self.name = name or self.name
        self.messages += spoke
        self.channel_code = self.channel_code or channel_code


async def _touch(
    session: AsyncSession, table: Table, seen: dict[Key, Sighting], *, now: datetime, first: str, last: str,
    keep_first: tuple[str, ...] = (), returning: tuple[str, ...],
) -> list[Row[Any]]:
    """The upsert of members and groups seen in a batch: one multi-row statement that creates the
    rows not there yet (``first`` and ``last`` set to ``now``) and refreshes the others: a name
    seen replaces the stored one, ``last`` becomes ``now``, the batch's messages are added, and
    the ``keep_first`` columns keep the value they had, if any. Returns the ``returning`` columns."""
    if not seen:
        return []
    # Sorted keys: concurrent transactions lock rows in one order, so they cannot deadlock.
    rows = [
        {"channel": c, "external_id": e, "name": s.name, **{k: getattr(s, k) for k in keep_first}, "status": "active",
         "message_count": s.messages, first: now, last: now}
        for (c, e), s in sorted(seen.items())
    ]
    def build(stmt: Any) -> Any:
        ex = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[table.c.channel, table.c.external_id],
            set_={
                "name": func.coalesce(ex.name, table.c.name),
                **{k: func.coalesce(table.c[k], ex[k]) for k in keep_first},
                last: ex[last],
                "message_count": table.c.message_count + ex.message_count,
            },
        ).returning(*(table.c[k] for k in returning))

    stmt = upsert_for(session, table, ("touch", last, keep_first, returning), build)
    return list(await session.execute(stmt, rows))


async def touch_members(session: AsyncSession, seen: dict[Key, Sighting], *, now: datetime) -> dict[Key, MemberRef]:
    """Create the members or refresh what we know; add the messages they sent. A member keeps
    the channel code they first came by."""
    rows = await _touch(session, M, seen, now=now, first="first_seen_at", last="last_seen_at",
                        keep_first=("channel_code",),
                        returning=("id", "channel", "external_id", "name", "status", "message_count"))
    return {(r.channel, r.external_id): MemberRef(r.id, r.channel, r.external_id, r.name, r.status, r.message_count)
            for r in rows}


async def touch_groups(session: AsyncSession, seen: dict[Key, Sighting], *, now: datetime) -> dict[Key, GroupRef]:
    """Create the groups or refresh what we know; add the messages sent in them."""
    rows = await _touch(session, G, seen, now=now, first="created_at", last="last_active_at",
                        returning=("id", "channel", "external_id", "name"))
    return {(r.channel, r.external_id): GroupRef(r.id, r.channel, r.external_id, r.name) for r in rows}


async def record_spoken(session: AsyncSession, counts: dict[tuple[int, int], int], *, now: datetime) -> None:
    """Members spoke in groups ((group_id, member_id) → messages): they are in those groups, even
    if we missed the join, and active."""
    if not counts:
        return
    rows = [{"group_id": g, "member_id": m, "joined_at": now, "last_spoke_at": now, "message_count": n}
            for (g, m), n in sorted(counts.items())]
    stmt = upsert_for(session, GM, "spoken", lambda stmt: stmt.on_conflict_do_update(
        index_elements=[GM.c.group_id, GM.c.member_id],
        set_={"last_spoke_at": stmt.excluded.last_spoke_at,
              "message_count": GM.c.message_count + stmt.excluded.message_count, "left_at": None},
    ))
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
    return rowcount(result) > 0


async def group_member_count(session: AsyncSession, group_id: int) -> int:
    return (await session.execute(
        select(func.count()).select_from(GM).where(GM.c.group_id == group_id, GM.c.left_at.is_(None))
    )).scalar_one()


async def set_member_status(session: AsyncSession, member_id: int, status: str, *, now: datetime) -> None:
    """``active`` or ``lost`` (the contact was deleted on either side), with when it was lost."""
    await session.execute(update(M).where(M.c.id == member_id)
                          .values(status=status, lost_at=now if status == "lost" else None))


async def group_by_external(session: AsyncSession, channel: str, external_id: str) -> Group | None:
    return (await session.execute(
        select(Group).where(col(Group.channel) == channel, col(Group.external_id) == external_id)
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
            update(GM).where(GM.c.group_id == group_id, GM.c.member_id.in_(gone), GM.c.left_at.is_(None))
            .values(left_at=now)
        )
    return len(member_ids - current), len(gone)


async def attributes(session: AsyncSession, member_id: int) -> dict[str, object]:
    return dict((await session.execute(select(M.c.attributes).where(M.c.id == member_id))).scalar_one() or {})


async def set_attributes(session: AsyncSession, member_id: int, values: dict[str, object]) -> None:
    """Merge ``values`` into the member's profile attributes."""
    current = await attributes(session, member_id)
    await session.execute(update(M).where(M.c.id == member_id).values(attributes={**current, **values}))


async def remove_attributes(session: AsyncSession, member_id: int, keys: Iterable[str]) -> None:
    """Drop ``keys`` from the member's profile attributes (a member removed an answer or a number)."""
    gone = set(keys)
    current = await attributes(session, member_id)
    if gone & current.keys():
        await session.execute(update(M).where(M.c.id == member_id)
                              .values(attributes={k: v for k, v in current.items() if k not in gone}))


async def active_groups(session: AsyncSession) -> list[Group]:
    """Every group siyu is still in, oldest first."""
    return list((await session.execute(select(Group).where(col(Group.status) == "active")
                                       .order_by(col(Group.id)))).scalars())
