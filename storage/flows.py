"""Rows of member flows: load, save with a version check, the active one, the due deadlines."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.community import Member
from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class MemberFlow(SQLModel, table=True):
    """Where a member stands in one conversation flow: one row per (member, flow)."""

    __tablename__ = "member_flows"
    # by flow: the console's KOC funnel counts one flow's rows without reading all of them
    __table_args__ = (Index("ix_member_flows_deadline", "deadline_at"), Index("ix_member_flows_flow", "flow", "state"))

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    flow: str = Field(sa_column=Column(String(64), primary_key=True))
    state: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Bumped by every change: a writer that read an older version lost a race and must not save.
    version: int = Field(default=0)
    # The flow that takes the member's free text (one at a time).
    active: bool = Field(default=False)
    # Deadlines run from entering the state; each of the state's deadlines fires once.
    entered_at: datetime = utc_field()
    deadlines_fired: int = Field(default=0)
    deadline_at: datetime | None = utc_field(default=None)
    started_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    finished_at: datetime | None = utc_field(default=None)


T = table_of(MemberFlow)


class StaleFlow(Exception):
    """The row changed since it was read: the change that read it must not be saved."""


@dataclass(frozen=True, slots=True)
class Due:
    member_id: int
    flow: str
    version: int
    channel: str
    external_id: str


async def load(session: AsyncSession, member_id: int, flow: str) -> MemberFlow | None:
    await flush(session)
    # Read again even if this transaction holds the row already: rows are changed by core
    # updates (``save``), which the session's copy does not see (a confirmation left, then
    # started again, by one message).
    return (await session.execute(
        select(MemberFlow).where(col(MemberFlow.member_id) == member_id, col(MemberFlow.flow) == flow)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def active(session: AsyncSession, member_id: int) -> MemberFlow | None:
    """The flow that takes the member's free text, if any."""
    await flush(session)
    return (await session.execute(
        select(MemberFlow).where(col(MemberFlow.member_id) == member_id, col(MemberFlow.active).is_(True))
        .execution_options(populate_existing=True)
    )).scalars().first()


async def active_of(session: AsyncSession, member_ids: list[int]) -> dict[int, MemberFlow]:
    """The active flow rows of several members at once (one query for a whole batch)."""
    if not member_ids:
        return {}
    await flush(session)
    rows = await session.execute(
        select(MemberFlow).where(col(MemberFlow.member_id).in_(member_ids), col(MemberFlow.active).is_(True))
    )
    return {row.member_id: row for row in rows.scalars()}


def written_in(session: AsyncSession) -> set[int]:
    """Members whose flow rows this transaction changed (their prefetched rows are stale)."""
    return session.info.setdefault("flow_writes", set())


async def of_member(session: AsyncSession, member_id: int) -> list[MemberFlow]:
    await flush(session)
    rows = await session.execute(select(MemberFlow).where(col(MemberFlow.member_id) == member_id)
                                 .order_by(col(MemberFlow.started_at)))
    return list(rows.scalars())


async def save(
    session: AsyncSession, member_id: int, flow: str, *, state: str, data: dict[str, Any], version: int,
    active: bool, entered_at: datetime, deadlines_fired: int, deadline_at: datetime | None, now: datetime,
    finished: bool = False, was_active: bool = False,
) -> int:
    """Write the row as it is after a change made from ``version`` (0: there was no row); return
    the new version. Raises ``StaleFlow`` if someone else changed it since."""
    await flush(session)
    written_in(session).add(member_id)
    values = {"state": state, "data": data, "active": active, "entered_at": entered_at,
              "deadlines_fired": deadlines_fired, "deadline_at": deadline_at, "updated_at": now,
              "finished_at": now if finished else None}
    if version == 0:
        stmt = insert_for(session, T).values(member_id=member_id, flow=flow, version=1, started_at=now, **values)
        stmt = stmt.on_conflict_do_nothing(index_elements=[T.c.member_id, T.c.flow]).returning(T.c.version)
        if (await session.execute(stmt)).first() is None:
            raise StaleFlow(f"{flow} of member {member_id} already exists")
        new = 1
    else:
        result = await session.execute(
            update(T).where(T.c.member_id == member_id, T.c.flow == flow, T.c.version == version)
            .values(version=version + 1, **values)
        )
        if rowcount(result) != 1:
            raise StaleFlow(f"{flow} of member {member_id} changed since version {version}")
        new = version + 1
    if active and not was_active:
        # One flow takes free text at a time: the newest active one.
        await session.execute(
            update(T).where(T.c.member_id == member_id, T.c.flow != flow, T.c.active.is_(True)).values(active=False)
        )
    return new


# A finished row's save, written with the others of its transaction by ``flush``: one statement
# for a rush of confirmations instead of one each. The values are named apart from the columns.
_FINISH = (update(T).where(T.c.member_id == bindparam("p_member"), T.c.flow == bindparam("p_flow"),
                           T.c.version == bindparam("p_version"))
           .values(version=bindparam("p_next"), state=bindparam("p_state"), data=bindparam("p_data", type_=JSON),
                   active=False, entered_at=bindparam("p_entered", type_=T.c.entered_at.type),
                   deadlines_fired=bindparam("p_fired"), deadline_at=None,
                   updated_at=bindparam("p_now", type_=T.c.updated_at.type),
                   finished_at=bindparam("p_finished", type_=T.c.finished_at.type)))
PENDING = "flow_finishes"  # session.info key of the saves ``finish`` left for ``flush``


def finish(session: AsyncSession, member_id: int, flow: str, *, state: str, data: dict[str, Any], version: int,
           entered_at: datetime, deadlines_fired: int, now: datetime) -> int:
    """``save`` of a row that reached a final state (inactive, no deadline), written later with
    the transaction's other finished rows by ``flush``, which the caller must see run before
    the commit; every other function here flushes first, so nobody reads the row unwritten.
    Returns the new version."""
    written_in(session).add(member_id)
    session.info.setdefault(PENDING, []).append({
        "p_member": member_id, "p_flow": flow, "p_version": version, "p_next": version + 1, "p_state": state,
        "p_data": data, "p_entered": entered_at, "p_fired": deadlines_fired, "p_now": now, "p_finished": now})
    return version + 1


async def flush(session: AsyncSession) -> None:
    """Write the rows ``finish`` left; ``StaleFlow`` if any of them changed since it was read."""
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    result = await session.execute(_FINISH, pending)
    if rowcount(result) != len(pending):
        raise StaleFlow(f"{len(pending) - rowcount(result)} of {len(pending)} finished flows changed since read")


async def restart(session: AsyncSession, member_id: int, flow: str, **kw: Any) -> int:
    """Start ``flow`` again from scratch whatever its row says (a new screening, an operator reset)."""
    row = await load(session, member_id, flow)
    return await save(session, member_id, flow, version=row.version if row else 0, **kw)


async def due(session: AsyncSession, *, now: datetime, limit: int = 500) -> list[Due]:
    """Rows whose deadline has passed, oldest first, with the member's channel identity."""
    await flush(session)
    rows = await session.execute(
        select(T.c.member_id, T.c.flow, T.c.version, col(Member.channel), col(Member.external_id))
        .join(Member, col(Member.id) == T.c.member_id)
        .where(T.c.deadline_at <= now, T.c.finished_at.is_(None))
        .order_by(T.c.deadline_at).limit(limit)
    )
    return [Due(*r) for r in rows]
