"""Daily sign-ins (签到): one per member per local day, with the streak of days in a row."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for


class SignIn(SQLModel, table=True):
    """A daily sign-in: one per member per local day. (Stored under its first name, checkins.)"""

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_day", "day"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    streak: int
    points: int
    at: datetime = utc_field()
    via: str | None = Field(default=None, max_length=8)  # chat | page (the member center); None before 0021


T = table_of(SignIn)


async def sign_in(session: AsyncSession, member_id: int, day: date, *, points: int, now: datetime,
                  via: str | None = None) -> int | None:
    """Record today's sign-in; its streak, or None if the member signed in today already.
    The primary key (member, day) makes a second sign-in the same day impossible."""
    before = (await session.execute(
        select(T.c.streak).where(T.c.member_id == member_id, T.c.day == day - timedelta(days=1))
    )).scalar_one_or_none()
    streak = (before or 0) + 1
    stmt = insert_for(session, T).values(member_id=member_id, day=day, streak=streak, points=points, at=now,
                                             via=via)
    stmt = stmt.on_conflict_do_nothing(index_elements=[T.c.member_id, T.c.day]).returning(T.c.streak)
    return (await session.execute(stmt)).scalar_one_or_none()


async def streak_on(session: AsyncSession, member_id: int, day: date) -> int:
    return int((await session.execute(
        select(T.c.streak).where(T.c.member_id == member_id, T.c.day == day)
    )).scalar_one_or_none() or 0)


async def sign_in_many(session: AsyncSession, members: list[int], day: date, *, points: int,
                       now: datetime) -> dict[int, tuple[int, bool]]:
    """``sign_in`` for several members at once (a batch of updates): member → (streak, True) for
    a sign-in recorded now, (today's streak, False) for a member who had signed in today. Three
    statements for the whole batch instead of two per member."""
    if not members:
        return {}
    known = (await session.execute(select(T.c.member_id, T.c.day, T.c.streak).where(
        T.c.member_id.in_(members), T.c.day.in_([day, day - timedelta(days=1)])))).all()
    today = {r.member_id: r.streak for r in known if r.day == day}
    before = {r.member_id: r.streak for r in known if r.day != day}
    result: dict[int, tuple[int, bool]] = {m: (s, False) for m, s in today.items()}
    rows = [{"member_id": m, "day": day, "streak": before.get(m, 0) + 1, "points": points, "at": now}
            for m in sorted(set(members) - today.keys())]  # sorted: rows locked in one order
    if rows:
        stmt = insert_for(session, T).on_conflict_do_nothing(index_elements=[T.c.member_id, T.c.day])
        done = {r.member_id: r.streak for r in await session.execute(stmt.returning(T.c.member_id, T.c.streak), rows)}
        result |= {m: (s, True) for m, s in done.items()}
        if raced := [r["member_id"] for r in rows if r["member_id"] not in done]:  # another process, same moment
            result |= {m: (await streak_on(session, m, day), False) for m in raced}
    return result
