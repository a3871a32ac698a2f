"""「排行」 shows this week's leaderboard (in a group: the group's; one-to-one: overall, with the
member's own place), 「排行 月」 this month's; and the same lines for broadcasts' {leaderboard}."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot import filters, periods
from bot.config import Config
from bot.context import Context
from bot.router import Keyword, Router
from bot.texts import Texts
from handlers.broadcasts.services import Placeholders
from handlers.leaderboard.config import LEADERBOARD
from storage import leaderboards
from storage.models import Group

router = Router("leaderboard")
ASK = re.compile(r"^(排行|排行榜)\s*(周|本周|月|本月)?$")


def lines(texts: Texts, places: list[leaderboards.Place]) -> str:
    return "\n".join(texts("rank_line", rank=p.rank, name=p.name, points=p.points) for p in places)


@router.message(filters.Regex(ASK), keyword=Keyword("排行", "rank_about"))
async def show(ctx: Context) -> None:
    match = ASK.match((ctx.update.text or "").strip())
    period = "month" if match and match.group(2) and "月" in match.group(2) else "week"
    label = ctx.texts(f"period_this_{period}")
    since, until = periods.current(period, ctx.now, ctx.zone)
    group_id = ctx.group.id if ctx.group is not None else None
    places = await leaderboards.top(ctx.session, since=since, until=until, group_id=group_id,
                                    limit=ctx.config[LEADERBOARD].top_n)
    if not places:
        ctx.reply(ctx.texts("rank_empty", period=label))
        return
    header = ctx.texts("rank_header_group" if group_id is not None else "rank_header_all", period=label)
    text = header + "\n" + lines(ctx.texts, places)
    if group_id is None:
        mine = await leaderboards.rank_of(ctx.session, ctx.member.id, since=since, until=until)
        text += "\n" + (ctx.texts("rank_mine", rank=mine[0], points=mine[1]) if mine
                        else ctx.texts("rank_mine_none", period=label))
    ctx.reply(text)


async def template_values(session: AsyncSession, config: Config, texts: Texts, group: Group, slot: datetime,
                          names: frozenset[str]) -> dict[str, str]:
    """{leaderboard} and {leaderboard_month} of a broadcast: the group's top earners of the
    week / month that holds the slot."""
    values = {}
    for name, period in (("leaderboard", "week"), ("leaderboard_month", "month")):
        if name in names:
            since, until = periods.current(period, slot, config.zone)
            places = await leaderboards.top(session, since=since, until=until, group_id=group.id,
                                            limit=config[LEADERBOARD].top_n)
            values[name] = (lines(texts, places) if places
                            else texts("rank_empty", period=texts(f"period_this_{period}")))
    return values


PLACEHOLDERS = Placeholders(frozenset({"leaderboard", "leaderboard_month"}), template_values)
