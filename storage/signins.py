"""Daily sign-ins (签到): one per member per local day, with the streak of days in a row."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import UTCDateTime, utc_field
from storage.upsert import insert_for, upsert_for


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


# Each member's sign-in today, yesterday's streak and the sign-ins since a moment, for a batch:
# built once (a rush runs it every batch).
_STANDING = (
    select(T.c.member_id, func.max(case((T.c.day == bindparam("day"), T.c.streak))).label("today"),
           func.max(case((T.c.day == bindparam("yesterday"), T.c.streak))).label("before"),
           func.count(case((T.c.at >= bindparam("since", type_=UTCDateTime), 1))).label("days"))
    .where(T.c.member_id.in_(bindparam("members", expanding=True)), T.c.day >= bindparam("first_day"))
    .group_by(T.c.member_id)
)


@dataclass(frozen=True, slots=True)
class SignedIn:
    streak: int  # today's
    new: bool  # recorded now (False: the member had signed in today already)
    days: int = 0  # sign-ins since ``count_since``, today's included


async def sign_in_many(session: AsyncSession, members: Mapping[int, str | None], day: date, *, points: int,
                       now: datetime, count_since: datetime | None = None) -> dict[int, SignedIn]:
    """``sign_in`` for several members at once (a batch of updates; member → ``via``), in two
    statements for the whole batch instead of two per member; with ``count_since``, each
    member's sign-ins since then are counted in the same read (what lifecycle stages count)."""
    if not members:
        return {}
    yesterday = day - timedelta(days=1)
    since = count_since or now
    # ``at >= since`` implies a local day no earlier than the day before since's UTC date: the
    # primary key's range bounds the read.
    first_day = min(yesterday, since.date() - timedelta(days=1))
    known = {r.member_id: r for r in (await session.execute(_STANDING, {
        "members": list(members), "day": day, "yesterday": yesterday, "since": since, "first_day": first_day,
    })).all()}
    result = {m: SignedIn(int(r.today), False, int(r.days)) for m, r in known.items() if r.today is not None}
    rows: list[dict[str, Any]] = [{"member_id": m, "day": day, "points": points, "at": now, "via": members[m],
             "streak": (known[m].before or 0) + 1 if m in known else 1}
            for m in sorted(set(members) - result.keys())]  # sorted: rows locked in one order
    if rows:
        stmt = upsert_for(session, T, "sign_in_many", lambda stmt: stmt.on_conflict_do_nothing(
            index_elements=[T.c.member_id, T.c.day]).returning(T.c.member_id, T.c.streak))
        done = {r.member_id: r.streak for r in await session.execute(stmt, rows)}
        for m, streak in done.items():
            result[m] = SignedIn(streak, True, (int(known[m].days) if m in known else 0) + 1)
        if raced := [r["member_id"] for r in rows if r["member_id"] not in done]:  # another process, at once
            result |= {m: SignedIn(await streak_on(session, m, day), False) for m in raced}
    return result
