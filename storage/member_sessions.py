"""Sessions of the member center (会员中心), kept server-side like the console's: the cookie only
names a session, so ending it (or deleting the member) refuses the cookie in every process."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage import points, signins
from storage.community import Member
from storage.sql import rowcount, table_of
from storage.types import utc_field


class MemberSession(SQLModel, table=True):
    """A member signed in to the member center (by WeCom's web authorization, or the sandbox)."""

    __tablename__ = "member_sessions"

    id: str = Field(max_length=64, primary_key=True)  # random, the cookie's (signed) content
    # A member the brand deletes takes their sessions along (nothing is shown for them again).
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"),
                                            nullable=False, index=True))
    created_at: datetime = utc_field()
    expires_at: datetime = utc_field()
    revoked_at: datetime | None = utc_field(default=None)


T = table_of(MemberSession)


async def open_session(session: AsyncSession, member_id: int, *, now: datetime, lifetime: timedelta) -> str:
    """A new session of the member valid for ``lifetime``; its id (256 random bits)."""
    sid = secrets.token_urlsafe(32)
    await session.execute(insert(T).values(id=sid, member_id=member_id, created_at=now, expires_at=now + lifetime))
    return sid


# Built once: every page runs one of these, and building a statement costs more than
# running it (the compiled form is cached by SQLAlchemy; the construction is not).
_NOW = bindparam("now", type_=T.c.expires_at.type)
_OPEN = and_(T.c.id == bindparam("sid"), T.c.revoked_at.is_(None), T.c.expires_at > _NOW)
_MEMBER_OF = select(Member).join(T, T.c.member_id == col(Member.id)).where(_OPEN)


async def member_of(session: AsyncSession, sid: str, *, now: datetime) -> Member | None:
    """The member of session ``sid`` if it is open and the member still exists: one read by
    primary key on every page (a revocation by any process holds at once)."""
    return (await session.execute(_MEMBER_OF, {"sid": sid, "now": now})).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's own figures the pages show beside their name: points (spendable, pending,
    earned ever) and the sign-in streak as of a day."""

    balance: int
    pending: int
    lifetime: int
    streak: int  # today's if signed in today, else yesterday's (it still stands until today ends)
    signed: bool  # signed in today


def _streak_on(day: str) -> Any:
    C = signins.T
    return (select(C.c.streak).where(C.c.member_id == col(Member.id), C.c.day == bindparam(day, type_=C.c.day.type))
            .correlate(Member).scalar_subquery())


_STANDING = (select(Member, points.B.c.balance, points.B.c.pending, points.B.c.lifetime, _streak_on("today"),
                    _streak_on("yesterday"))
             .join(T, T.c.member_id == col(Member.id)).outerjoin(points.B, points.B.c.member_id == col(Member.id))
             .where(_OPEN))


async def member_and_standing(session: AsyncSession, sid: str, *, now: datetime,
                              day: date) -> tuple[Member, Standing] | None:
    """``member_of`` and the member's ``Standing`` on ``day`` in the same statement: the
    balance row and the two sign-ins are primary-key lookups (a page pays one round trip)."""
    row = (await session.execute(_STANDING, {"sid": sid, "now": now, "today": day,
                                             "yesterday": day - timedelta(days=1)})).one_or_none()
    if row is None:
        return None
    member, balance, pending, lifetime, today, yesterday = row
    return member, Standing(int(balance or 0), int(pending or 0), int(lifetime or 0),
                            int(today or yesterday or 0), bool(today))


async def revoke(session: AsyncSession, sid: str, *, now: datetime) -> bool:
    """End one session (signing out); whether it was still open."""
    return rowcount(await session.execute(
        update(T).where(T.c.id == sid, T.c.revoked_at.is_(None)).values(revoked_at=now))) > 0


async def revoke_member(session: AsyncSession, member_id: int, *, now: datetime) -> int:
    """End every open session of a member; how many."""
    return rowcount(await session.execute(
        update(T).where(T.c.member_id == member_id, T.c.revoked_at.is_(None)).values(revoked_at=now)))


async def delete_ended(session: AsyncSession, *, now: datetime) -> int:
    """Delete the sessions that expired or were revoked (they refuse their cookie already)."""
    return rowcount(await session.execute(
        delete(T).where(or_(T.c.revoked_at.is_not(None), T.c.expires_at <= now))))
