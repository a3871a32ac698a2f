"""Daily sign-ins (签到): one per member per local day, with the streak of days in a row."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, bindparam, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.community import Member
from storage.sql import table_of
from storage.types import UTCDateTime, utc_field
from storage.upsert import upsert_for

CHAT, PAGE = "chat", "page"  # the surface a sign-in (or a redemption) came from: its ``via``


class SignIn(SQLModel, table=True):
    """A daily sign-in: one per member per local day. (Stored under its first name, checkins.)"""

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_day", "day"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    streak: int
    points: int
    at: datetime = utc_field()
    via: str | None = Field(default=None, max_length=8)  # CHAT | PAGE (the member center); None before 0021


T = table_of(SignIn)


async def streak_on(session: AsyncSession, member_id: int, day: date) -> int:
    return int((await session.execute(
        select(T.c.streak).where(T.c.member_id == member_id, T.c.day == day)
    )).scalar_one_or_none() or 0)


# The sign-ins of a batch in one statement (a rush runs it every batch): each member's row with
# yesterday's streak + 1, rows inserted in member order (locks taken in one order); a member
# who signed in today already is skipped by the key. What it returns counts the member's
# sign-ins since ``since`` before today (the lifecycle's count; today's is the new row).
_Y = T.alias("yesterday")
_EARLIER = T.alias("earlier")
_M = table_of(Member)


def _sign_in_all() -> Any:
    return (select(_M.c.id, bindparam("day", type_=Date), func.coalesce(_Y.c.streak, 0) + 1,
                   bindparam("points", type_=Integer), bindparam("at", type_=UTCDateTime),
                   case((_M.c.id.in_(bindparam("on_page", expanding=True)), PAGE), else_=CHAT))
            .select_from(_M.outerjoin(_Y, (_Y.c.member_id == _M.c.id) & (_Y.c.day == bindparam("yesterday"))))
            .where(_M.c.id.in_(bindparam("members", expanding=True)))
            .order_by(_M.c.id))


def _days_before() -> Any:
    # Named in full: in RETURNING, SQLAlchemy writes the table's own columns unqualified.
    return (select(func.count()).where(_EARLIER.c.member_id == literal_column("checkins.member_id"),
                                       _EARLIER.c.day < literal_column("checkins.day"),
                                       _EARLIER.c.at >= bindparam("since", type_=UTCDateTime))
            .scalar_subquery())


# Today's streak of the members a batch found signed in already (rare: a second 签到).
_TODAY = select(T.c.member_id, T.c.streak).where(T.c.member_id.in_(bindparam("members", expanding=True)),
                                                  T.c.day == bindparam("day"))


@dataclass(frozen=True, slots=True)
class SignedIn:
    streak: int  # today's
    new: bool  # recorded now (False: the member had signed in today already)
    days: int = 0  # sign-ins since ``count_since``, today's included


async def sign_in_many(session: AsyncSession, members: Mapping[int, str | None], day: date, *, points: int,
                       now: datetime, count_since: datetime | None = None) -> dict[int, SignedIn]:
    """Record today's sign-in of several members at once (a batch of updates; member → ``via``,
    CHAT or PAGE), in one statement for the whole batch; with ``count_since``, each member's
    sign-ins since then are counted by that statement too (what lifecycle stages count). A
    member who had signed in today already costs one read more."""
    if not members:
        return {}
    stmt = upsert_for(session, T, "sign_in_many", lambda stmt: stmt.from_select(
        ["member_id", "day", "streak", "points", "at", "via"], _sign_in_all(),
    ).on_conflict_do_nothing(index_elements=[T.c.member_id, T.c.day]).returning(
        T.c.member_id, T.c.streak, _days_before().label("days")))
    rows = await session.execute(stmt, {
        "members": sorted(members), "on_page": [m for m, via in members.items() if via == PAGE],
        "day": day, "yesterday": day - timedelta(days=1), "points": points, "at": now, "since": count_since or now,
    })
    result = {r.member_id: SignedIn(int(r.streak), True, int(r.days) + 1) for r in rows}
    if before := sorted(set(members) - result.keys()):  # signed in today already (here or, at once, elsewhere)
        found = {r.member_id: int(r.streak) for r in await session.execute(_TODAY, {"members": before, "day": day})}
        result |= {m: SignedIn(found.get(m, 0), False) for m in before}
    return result
