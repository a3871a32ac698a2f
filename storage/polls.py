"""Votes on the next rewards: a poll's options are candidate rewards; a member has one vote
per poll (a new vote replaces the old); closing tallies it once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class Poll(SQLModel, table=True):
    """A vote on the next rewards: the options are candidate rewards; the winners enter the catalog."""

    __tablename__ = "polls"
    __table_args__ = (Index("ix_polls_status", "status", "closes_at"),)

    id: int = Field(default=None, primary_key=True)
    title: str = Field(max_length=64)
    # [{"name", "cost", "stock"}], numbered from 1 in chat
    options: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    winners: int = Field(default=1)  # how many of the most voted options enter the catalog
    status: str = Field(default="open", max_length=8)  # open | closed
    opened_by: str = Field(max_length=160)
    opened_at: datetime = utc_field()
    closes_at: datetime | None = utc_field(default=None)
    closed_at: datetime | None = utc_field(default=None)


class PollVote(SQLModel, table=True):
    """A member's vote: one per poll (the primary key); a new vote replaces the old one."""

    __tablename__ = "poll_votes"

    poll_id: int = Field(sa_column=Column(Integer, ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    option: int  # 1-based
    at: datetime = utc_field()


P = table_of(Poll)
V = table_of(PollVote)
OPEN, CLOSED = "open", "closed"


class PollError(Exception):
    """A vote that cannot count: ``reason`` is no_poll, closed or bad_option."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Tally:
    option: int  # 1-based
    name: str
    votes: int


async def open_poll(session: AsyncSession, *, title: str, options: list[dict[str, Any]], winners: int, opened_by: str,
                    now: datetime, closes_at: datetime | None = None) -> int:
    """Open a poll; ``options`` are candidate rewards ``{"name", "cost", "stock"}``."""
    if not 2 <= len(options) <= 20:
        raise ValueError("a poll has 2 to 20 options")
    if not 1 <= winners <= len(options):
        raise ValueError("winners must be 1 to the number of options")
    return int((await session.execute(P.insert().values(
        title=title, options=options, winners=winners, status=OPEN, opened_by=opened_by, opened_at=now,
        closes_at=closes_at).returning(P.c.id))).scalar_one())


async def current(session: AsyncSession) -> Poll | None:
    """The newest open poll."""
    return (await session.execute(select(Poll).where(col(Poll.status) == OPEN).order_by(col(Poll.id).desc())
                                  .limit(1))).scalar_one_or_none()


async def get(session: AsyncSession, poll_id: int) -> Poll | None:
    return (await session.execute(select(Poll).where(col(Poll.id) == poll_id)
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


async def vote(session: AsyncSession, poll_id: int, member_id: int, option: int, *, now: datetime) -> int | None:
    """Record the member's vote; returns the option it replaced (None for a first vote)."""
    poll = await get(session, poll_id)
    if poll is None:
        raise PollError("no_poll")
    if poll.status != OPEN or (poll.closes_at is not None and poll.closes_at <= now):
        raise PollError("closed")  # past its time: closed, even before the job has tallied it
    if not 1 <= option <= len(poll.options):
        raise PollError("bad_option")
    before = await vote_of(session, poll_id, member_id)
    stmt = insert_for(session, V).values(poll_id=poll_id, member_id=member_id, option=option, at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[V.c.poll_id, V.c.member_id],
                                                     set_={"option": option, "at": now}))
    return before


async def tally(session: AsyncSession, poll: Poll) -> list[Tally]:
    """Every option with its votes, most voted first (ties: the lower number first)."""
    counts: dict[int, int] = dict((await session.execute(select(V.c.option, func.count()).where(V.c.poll_id == poll.id)
                                                         .group_by(V.c.option))).all())
    tallies = [Tally(i, o["name"], int(counts.get(i, 0))) for i, o in enumerate(poll.options, 1)]
    return sorted(tallies, key=lambda t: (-t.votes, t.option))


async def close(session: AsyncSession, poll_id: int, *, now: datetime) -> list[Tally] | None:
    """Close an open poll and return its tally; None if it was not open (closed by someone
    else first: the guard makes closing happen once)."""
    done = await session.execute(update(P).where(P.c.id == poll_id, P.c.status == OPEN)
                                 .values(status=CLOSED, closed_at=now))
    if rowcount(done) != 1:
        return None
    poll = await get(session, poll_id)
    assert poll is not None
    return await tally(session, poll)


async def due(session: AsyncSession, *, now: datetime) -> list[int]:
    """Open polls whose closing time has passed."""
    return list((await session.execute(select(P.c.id).where(P.c.status == OPEN, P.c.closes_at <= now))).scalars())


async def vote_of(session: AsyncSession, poll_id: int, member_id: int) -> int | None:
    """The option the member voted for (None: no vote)."""
    return (await session.execute(select(V.c.option).where(V.c.poll_id == poll_id, V.c.member_id == member_id))
            ).scalar_one_or_none()


async def closed(session: AsyncSession, *, limit: int) -> list[Poll]:
    """The latest closed polls, newest first."""
    return list((await session.execute(select(Poll).where(col(Poll.status) == CLOSED)
                                       .order_by(col(Poll.id).desc()).limit(limit))).scalars())
