"""The member center's home (首页): who I am, my points and level, today's sign-in, the vote
and today's tasks; and the sign-in button, the same sign-in as 签到 in chat."""
from __future__ import annotations

from aiohttp import web

from bot import periods
from bot.appkeys import CONFIG, DB
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only, now_of
from bot.member_center.render import notice_of, page
from handlers.levels.services import levels_of
from handlers.signin import services as signin
from storage import points, polls, task_definitions


@member_only
async def home(request: web.Request) -> web.Response:
    visitor, config = request[VISITOR], request.app[CONFIG]
    today = periods.local_day(now_of(request), config.zone)
    levels = levels_of(config)
    async with request.app[DB].read() as s:
        balance = await points.balance(s, visitor.member_id)
        pending = await points.pending(s, visitor.member_id)
        lifetime = await points.lifetime(s, visitor.member_id)
        streak, signed = await signin.streak(s, visitor.member_id, today)
        poll = await polls.current(s)
        tasks = await task_definitions.active(s)
    following = levels.next_tier(lifetime)
    progress = None
    if following is not None:
        floor = max((t.min_points for t in levels.tiers if t.min_points <= lifetime), default=0)
        progress = int(100 * (lifetime - floor) / max(1, following.min_points - floor))
    return page(request, "home.html", notice=notice_of(request), balance=balance, pending=pending,
                lifetime=lifetime, level=levels.tier(lifetime), following=following, progress=progress,
                streak=streak, signed=signed, signin=signin.settings(config), poll=poll, tasks=tasks[:5])


@member_only
async def checkin(request: web.Request) -> web.StreamResponse:
    settings = signin.settings(request.app[CONFIG])
    if settings is None:
        raise web.HTTPNotFound(reason="签到未开启")
    raise back(request, "m_home", await act(request, text=settings.keyword))
