"""The member center's leaderboard page (排行): this week's or month's points board overall and
of each group I am in, with my place on each (``handlers.leaderboard.services``, as the chat's
「排行」 ranks)."""
from __future__ import annotations

from aiohttp import web

from bot.appkeys import CONFIG, DB
from bot.member_center.auth import VISITOR, member_only, now_of
from bot.member_center.render import notice_of, page
from handlers.leaderboard import services as leaderboard

GROUPS_SHOWN = 5  # a member's groups with a board on the page


@member_only
async def ranks_page(request: web.Request) -> web.Response:
    period = request.query.get("period", "week")
    if period not in leaderboard.PERIODS:
        raise web.HTTPBadRequest(reason="period 应为 week（本周）或 month（本月）")
    visitor, config, now = request[VISITOR], request.app[CONFIG], now_of(request)
    async with request.app[DB].read() as s:
        overall = await leaderboard.board(s, config, visitor.member_id, period=period, now=now)
        groups = [await leaderboard.board(s, config, visitor.member_id, period=period, now=now, group=g)
                  for g in (await leaderboard.groups_of(s, visitor.member_id))[:GROUPS_SHOWN]]
    return page(request, "ranks.html", notice=notice_of(request), period=period, periods=leaderboard.PERIODS,
                overall=overall, groups=groups, me=visitor.member_id)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/m/ranks", ranks_page, name="m_ranks")
