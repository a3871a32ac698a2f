"""Task check-ins (打卡): counted per member and period for caps, credited now or after review."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage import task_definitions
from storage.community import Member
from storage.sql import rowcount, table_of
from storage.types import UTCDateTime, utc_field
from storage.upsert import insert_for


class TaskCheckin(SQLModel, table=True):
    """A task check-in (打卡): credited at once, or waiting for an operator when the task says so."""

    __tablename__ = "task_checkins"
    __table_args__ = (
        Index("ix_task_checkins_member_task", "member_id", "task", "at"),
        Index("ix_task_checkins_at", "at"),
    )

    id: int = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    task: str = Field(max_length=64)
    points: int
    proof: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The server-made file name of a photo uploaded as proof (under [member_center] upload_dir);
    # never a name a member chose.
    photo: str | None = Field(default=None, max_length=64)
    status: str = Field(default="credited", max_length=16)  # credited | pending | rejected
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    at: datetime = utc_field()


T = table_of(TaskCheckin)
PENDING, CREDITED, REJECTED = "pending", "credited", "rejected"
STATUSES = (PENDING, CREDITED, REJECTED)


async def counts_since_many(session: AsyncSession, pairs: list[tuple[int, str]],
                            since: datetime) -> dict[tuple[int, str], int]:
    """How many check-ins (not rejected) each (member, task) pair made since ``since``, in one
    statement for a batch's check-ins (the caps per day, week and month)."""
    if not pairs:
        return {}
    members, names = sorted({m for m, _ in pairs}), sorted({t for _, t in pairs})
    rows = (await session.execute(select(T.c.member_id, T.c.task, func.count()).where(
        T.c.member_id.in_(members), T.c.task.in_(names), T.c.at >= since, T.c.status != "rejected",
    ).group_by(T.c.member_id, T.c.task))).all()
    found = {(r[0], r[1]): int(r[2]) for r in rows}
    return {pair: found.get(pair, 0) for pair in pairs}


async def active_with_counts(session: AsyncSession, members: list[int], since: Mapping[str, datetime],
                             ) -> tuple[list[Any], dict[str, dict[tuple[int, str], int]]]:
    """The active tasks in menu order (rows with the name and ``task_definitions.RULES``) and,
    for each period of ``since`` (name → start), how many check-ins (not rejected) each of
    ``members`` made to each task since then: what a batch of 「打卡」 reads, in one statement
    rather than one for the tasks and one per capped period."""
    stmt = _STANDING.get(tuple(since))
    if stmt is None:
        d = task_definitions.T
        joined = d.outerjoin(T, (T.c.task == d.c.name) & T.c.member_id.in_(bindparam("members", expanding=True))
                             & (T.c.at >= bindparam("earliest", type_=UTCDateTime)) & (T.c.status != "rejected"))
        stmt = _STANDING[tuple(since)] = (
            select(d.c.name, *(d.c[k] for k in task_definitions.RULES), T.c.member_id.label("member"),
                   *(func.count(case((T.c.at >= bindparam(p, type_=UTCDateTime), 1))).label(f"n_{p}") for p in since))
            .select_from(joined).where(d.c.active.is_(True))
            .group_by(d.c.name, T.c.member_id).order_by(d.c.position, d.c.name))
    rows = (await session.execute(stmt, {"members": members, "earliest": min(since.values()), **since})).all()
    tasks = list({r.name: r for r in rows}.values())
    counts = {p: {(r.member, r.name): int(getattr(r, f"n_{p}")) for r in rows if r.member is not None} for p in since}
    return tasks, counts


_STANDING: dict[tuple[str, ...], Any] = {}  # built once per set of periods


async def record_many(session: AsyncSession, rows: list[dict[str, object]], *, now: datetime) -> dict[str, int]:
    """Record check-ins (member_id, task, points, proof, photo, status, key) in one statement:
    key → id of those recorded now (a key recorded before, a retry, is left out)."""
    if not rows:
        return {}
    stmt = insert_for(session, T).on_conflict_do_nothing(index_elements=[T.c.key]).returning(T.c.id, T.c.key)
    return {r.key: r.id for r in await session.execute(stmt, [{**row, "at": now} for row in rows])}


async def settle(session: AsyncSession, checkin_id: int, *, approve: bool) -> TaskCheckin | None:
    """An operator's decision on a pending check-in; None if it is not pending. One conditional
    update: of two decisions at once (two operators, a retried request) only one finds it pending."""
    result = await session.execute(update(T).where(T.c.id == checkin_id, T.c.status == PENDING)
                                   .values(status=CREDITED if approve else REJECTED))
    if rowcount(result) != 1:
        return None
    return (await session.execute(select(TaskCheckin).where(col(TaskCheckin.id) == checkin_id)
                                  .execution_options(populate_existing=True))).scalar_one()


async def of_status(session: AsyncSession, status: str, *, limit: int) -> list[tuple[TaskCheckin, Member]]:
    """Check-ins in ``status`` with their members: the review queue (pending) oldest first,
    the others newest first."""
    order = col(TaskCheckin.id) if status == PENDING else col(TaskCheckin.id).desc()
    rows = await session.execute(select(TaskCheckin, Member).join(Member, col(Member.id) == col(TaskCheckin.member_id))
                                 .where(col(TaskCheckin.status) == status).order_by(order).limit(limit))
    return [(checkin, member) for checkin, member in rows.all()]


async def counts_since(session: AsyncSession, member_id: int, since: datetime) -> dict[str, int]:
    """The member's check-ins per task since ``since`` that count toward caps (not rejected)."""
    rows = await session.execute(select(T.c.task, func.count()).where(
        T.c.member_id == member_id, T.c.at >= since, T.c.status != REJECTED).group_by(T.c.task))
    return {task: int(n) for task, n in rows.all()}


async def of_member(session: AsyncSession, member_id: int, *, limit: int) -> list[TaskCheckin]:
    """The member's latest check-ins, newest first."""
    return list((await session.execute(select(TaskCheckin).where(col(TaskCheckin.member_id) == member_id)
                                       .order_by(col(TaskCheckin.id).desc()).limit(limit))).scalars())


async def with_photo(session: AsyncSession, member_id: int, photo: str) -> TaskCheckin | None:
    """The member's check-in that holds the stored photo ``photo`` (None: it was not recorded).
    By member first: ix_task_checkins_member_task finds their rows without a scan of the table."""
    return (await session.execute(select(TaskCheckin).where(col(TaskCheckin.member_id) == member_id,
                                                            col(TaskCheckin.photo) == photo))).scalar_one_or_none()


async def photos_kept(session: AsyncSession) -> set[str]:
    """Every stored photo a check-in names (what the member center's cleanup must leave)."""
    return {photo for photo in (await session.execute(select(col(TaskCheckin.photo)).where(
        col(TaskCheckin.photo).is_not(None)))).scalars() if photo is not None}
