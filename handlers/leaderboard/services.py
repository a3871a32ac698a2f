"""Leaderboards (排行) for other surfaces: a period's board overall or of a group, the member's
place on it, and the groups whose boards a member sees (the member center's 排行 page)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot import periods
from bot.config import Config
from handlers.leaderboard.config import LEADERBOARD
from storage import leaderboards
from storage.leaderboards import Place
from storage.models import Group

__all__ = ["PERIODS", "Board", "Place", "board", "groups_of"]

PERIODS = ("week", "month")


@dataclass(frozen=True)
class Board:
    """One period's leaderboard, overall or (``group``) of a group, with the member's (rank, points)."""

    period: str
    places: list[Place]
    mine: tuple[int, int] | None
    group: Group | None


async def board(session: AsyncSession, config: Config, member_id: int, *, period: str, now: datetime,
                group: Group | None = None) -> Board:
    """The top ``[leaderboard] top_n`` of this ``period`` (week from Monday, or month) in the
    community's zone, overall or among ``group``'s current members, and the member's place."""
    since, until = periods.current(period, now, config.zone)
    group_id = group.id if group is not None else None
    places = await leaderboards.top(session, since=since, until=until, group_id=group_id,
                                    limit=config[LEADERBOARD].top_n)
    mine = await leaderboards.rank_of(session, member_id, since=since, until=until, group_id=group_id)
    return Board(period, places, mine, group)


async def groups_of(session: AsyncSession, member_id: int) -> list[Group]:
    """The groups the member is in now (each has its own board)."""
    return await leaderboards.groups_of(session, member_id)
