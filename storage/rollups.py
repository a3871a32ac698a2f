"""The console's rollups: each local day's numbers, each group's daily snapshot and the join
cohorts' retention, computed from the raw tables by a periodic job (``bot.console.rollups``).

Every write is an upsert of the whole day's numbers: two processes running the job at once, or
a job repeated after a crash, leave the same rows. Days are passed in as UTC bounds: storage
knows no time zone.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Date,
    ForeignKey,
    FromClause,
    Index,
    Integer,
    String,
    and_,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.broadcasts import Delivery
from storage.community import Group, GroupMembership, Member
from storage.koc import KocApplication
from storage.points import PointEntry
from storage.rewards import Redemption, Reward
from storage.signins import SignIn
from storage.sql import table_of
from storage.tasks import TaskCheckin
from storage.types import utc_field
from storage.upsert import insert_for


class MemberDay(SQLModel, table=True):
    """A member spoke (any text, commands included) on this local day: retention is counted from it."""

    __tablename__ = "member_days"
    __table_args__ = (Index("ix_member_days_day", "day"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))


class DailyMetric(SQLModel, table=True):
    """One number of one local day (``new_by_code`` / ``渠道A`` / 120); rewritten while the day
    can still change, then left alone."""

    __tablename__ = "daily_metrics"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(32), primary_key=True))
    dimension: str = Field(default="", sa_column=Column(String(128), primary_key=True))
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class RollupRun(SQLModel, table=True):
    """When a rollup last finished: the console says how fresh its numbers are."""

    __tablename__ = "rollup_runs"

    name: str = Field(sa_column=Column(String(32), primary_key=True))
    finished_at: datetime = utc_field()


class GroupDay(SQLModel, table=True):
    """A group as the rollup job saw it on a day: members, those who spoke in the 7 days before,
    and its message counter (the day's messages are the difference to the day before)."""

    __tablename__ = "group_days"
    __table_args__ = (Index("ix_group_days_day", "day", "group_id"),)

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    members: int
    active_7d: int
    messages: int = Field(sa_column=Column(BigInteger, nullable=False))


class CohortRetention(SQLModel, table=True):
    """Members first seen on ``cohort`` from one channel code, and how many of them spoke again
    on day 1, 7 and 30 after it (None until that day has ended)."""

    __tablename__ = "cohort_retention"

    cohort: date = Field(sa_column=Column(Date, primary_key=True))
    # The channel code (stored under its first name, source_state).
    channel_code: str = Field(default="", sa_column=Column("source_state", String(64), primary_key=True,
                                                           key="channel_code"))
    size: int
    d1: int | None = None
    d7: int | None = None
    d30: int | None = None


M, GM, MD = table_of(Member), table_of(GroupMembership), table_of(MemberDay)
DM, GD, CR = table_of(DailyMetric), table_of(GroupDay), table_of(CohortRetention)
PE, G = table_of(PointEntry), table_of(Group)
RUNS = table_of(RollupRun)
# The one rollup whose finish the console shows (the job of bot.console.rollups).
ROLLUP = "console_metrics"
CHUNK = 1000  # rows per multi-row insert: well inside SQLite's bound-parameter limit
RETENTION_DAYS = (1, 7, 30)
# The channel code, '' for none; inline (not a bound parameter) so PostgreSQL sees the GROUP
# BY expression as the selected one.
CHANNEL_CODE = func.coalesce(M.c.channel_code, literal_column("''"))


@dataclass(frozen=True)
class Day:
    """A local day and its bounds in UTC, ``start <= t < end``."""

    day: date
    start: datetime
    end: datetime


async def record_active(session: AsyncSession, member_ids: Iterable[int], day: date) -> None:
    """These members spoke on ``day``: one row each, whatever they said and how often."""
    rows = [{"member_id": m, "day": day} for m in sorted(set(member_ids))]
    if rows:
        await session.execute(insert_for(session, MD).on_conflict_do_nothing(), rows)


def _between(column: Any, d: Day) -> Any:
    return and_(column >= d.start, column < d.end)


def _day_queries(d: Day) -> dict[str, Any]:
    """metric -> a query of (dimension, value) rows for the day."""
    none = literal("")

    def points(kinds: tuple[str, ...], sign: int) -> Any:
        return select(none, func.coalesce(func.sum(PE.c.delta), 0) * sign).where(
            PE.c.kind.in_(kinds), PE.c.delta * sign > 0, _between(PE.c.created_at, d))

    return {
        "new_by_code": select(CHANNEL_CODE, func.count()).where(_between(M.c.first_seen_at, d)).group_by(CHANNEL_CODE),
        "new_by_channel": select(M.c.channel, func.count()).where(_between(M.c.first_seen_at, d)).group_by(M.c.channel),
        "lost": select(none, func.count()).where(_between(M.c.lost_at, d)),
        # Members at the end of the day: came before it, not lost by then.
        "members": select(none, func.count()).where(M.c.first_seen_at < d.end,
                                                    or_(M.c.lost_at.is_(None), M.c.lost_at >= d.end)),
        "group_joins": select(none, func.count()).where(_between(GM.c.joined_at, d)),
        "group_leaves": select(none, func.count()).where(_between(GM.c.left_at, d)),
        "active": select(none, func.count()).where(MD.c.day == d.day),
        "checkins": select(none, func.count()).select_from(SignIn).where(col(SignIn.day) == d.day),
        "task_checkins": select(col(TaskCheckin.task), func.count()).where(
            _between(col(TaskCheckin.at), d), col(TaskCheckin.status) != "rejected").group_by(col(TaskCheckin.task)),
        "points_issued": points(("earn", "grant"), 1),
        "points_spent": points(("spend",), -1),
        "points_expired": points(("expire",), -1),
        "redemptions": select(col(Reward.name), func.count()).select_from(Redemption)
            .join(Reward, col(Reward.id) == col(Redemption.reward_id))
            .where(_between(col(Redemption.created_at), d), col(Redemption.status) != "cancelled")
            .group_by(col(Reward.name)),
        "koc_screened": select(none, func.count()).select_from(KocApplication)
            .where(_between(col(KocApplication.created_at), d)),
        "deliveries": select(col(Delivery.status), func.count()).where(_between(col(Delivery.planned_for), d))
            .group_by(col(Delivery.status)),
    }


async def _write_day(session: AsyncSession, day: date, values: dict[tuple[str, str], int],
                     metrics: Iterable[str]) -> None:
    """Upsert the day's values of ``metrics``; a dimension seen before and absent now becomes 0
    (a delivery status no row has any more), so a rerun never leaves a stale number."""
    names = list(metrics)
    before = await session.execute(select(DM.c.metric, DM.c.dimension).where(DM.c.day == day, DM.c.metric.in_(names)))
    for metric, dimension in before:
        values.setdefault((metric, dimension), 0)
    rows = [{"day": day, "metric": m, "dimension": dim, "value": v} for (m, dim), v in sorted(values.items())]
    for i in range(0, len(rows), CHUNK):
        stmt = insert_for(session, DM)
        stmt = stmt.on_conflict_do_update(index_elements=[DM.c.day, DM.c.metric, DM.c.dimension],
                                          set_={"value": stmt.excluded.value})
        await session.execute(stmt, rows[i:i + CHUNK])


async def rollup_day(session: AsyncSession, d: Day) -> int:
    """Compute and store the day's numbers; how many were written."""
    values: dict[tuple[str, str], int] = {}
    queries = _day_queries(d)
    for metric, query in queries.items():
        for dimension, value in await session.execute(query):
            if value:
                values[(metric, str(dimension)[:128])] = int(value)
    await _write_day(session, d.day, values, queries)
    return len(values)


async def snapshot_groups(session: AsyncSession, day: date, *, active_since: datetime) -> int:
    """Each active group's members, members who spoke since ``active_since`` and message
    counter as of now, stored as the day's row; the community-wide distinct counts go to
    ``daily_metrics`` (``group_members``, ``group_speakers_7d``). How many groups."""
    inside = GM.c.left_at.is_(None)
    spoke = and_(inside, GM.c.last_spoke_at >= active_since)
    query = (
        select(G.c.id, func.count(GM.c.member_id).filter(inside), func.count(GM.c.member_id).filter(spoke),
               G.c.message_count)
        .select_from(G.outerjoin(GM, GM.c.group_id == G.c.id)).where(G.c.status == "active")
        .group_by(G.c.id, G.c.message_count)
    )
    rows = [{"group_id": gid, "day": day, "members": n, "active_7d": a, "messages": msgs}
            for gid, n, a, msgs in await session.execute(query)]
    for i in range(0, len(rows), CHUNK):
        stmt = insert_for(session, GD)
        stmt = stmt.on_conflict_do_update(
            index_elements=[GD.c.group_id, GD.c.day],
            set_={"members": stmt.excluded.members, "active_7d": stmt.excluded.active_7d,
                  "messages": stmt.excluded.messages},
        )
        await session.execute(stmt, rows[i:i + CHUNK])
    members = (await session.execute(select(func.count(func.distinct(GM.c.member_id))).where(inside))).scalar_one()
    speakers = (await session.execute(select(func.count(func.distinct(GM.c.member_id))).where(spoke))).scalar_one()
    await _write_day(session, day, {("group_members", ""): members, ("group_speakers_7d", ""): speakers},
                     ("group_members", "group_speakers_7d"))
    return len(rows)


async def rollup_cohorts(session: AsyncSession, cohorts: Sequence[Day], *, last_complete: date) -> int:
    """Size and day-1/7/30 retention of each cohort by channel code; a day-N figure stays None
    until day N has ended (``last_complete``). How many rows were written."""
    written = 0
    for c in cohorts:
        counted: list[ColumnElement[Any]] = []
        joins: FromClause = M
        for n in RETENTION_DAYS:
            on = c.day + timedelta(days=n)
            if on > last_complete:
                counted.append(literal(None))
                continue
            seen = MD.alias(f"d{n}")
            joins = joins.outerjoin(seen, and_(seen.c.member_id == M.c.id, seen.c.day == on))
            counted.append(func.count(seen.c.member_id))
        query = (select(CHANNEL_CODE, func.count(), *counted).select_from(joins).where(_between(M.c.first_seen_at, c))
                 .group_by(CHANNEL_CODE))
        rows = [{"cohort": c.day, "channel_code": str(state)[:64], "size": size, "d1": d1, "d7": d7, "d30": d30}
                for state, size, d1, d7, d30 in await session.execute(query)]
        if not rows:
            continue
        stmt = insert_for(session, CR)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CR.c.cohort, CR.c.channel_code],
            set_={k: getattr(stmt.excluded, k) for k in ("size", "d1", "d7", "d30")},
        )
        await session.execute(stmt, rows)
        written += len(rows)
    return written


async def days_with_metrics(session: AsyncSession, since: date) -> set[date]:
    """The days since ``since`` that have been rolled up (the job fills the gaps)."""
    return set((await session.execute(
        select(DM.c.day).where(DM.c.day >= since, DM.c.metric == "members").distinct())).scalars())


async def cohorts_with_rows(session: AsyncSession, since: date) -> set[date]:
    return set((await session.execute(select(CR.c.cohort).where(CR.c.cohort >= since).distinct())).scalars())



async def mark_rolled_up(session: AsyncSession, at: datetime) -> None:
    stmt = insert_for(session, RUNS).values(name=ROLLUP, finished_at=at)
    await session.execute(stmt.on_conflict_do_update(index_elements=[RUNS.c.name],
                                                     set_={"finished_at": stmt.excluded.finished_at}))


async def rolled_up_at(session: AsyncSession) -> datetime | None:
    """When the rollup job last finished (None: never)."""
    return (await session.execute(select(RUNS.c.finished_at).where(RUNS.c.name == ROLLUP))).scalar_one_or_none()
