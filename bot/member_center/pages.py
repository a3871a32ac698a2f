"""The member center's home (首页): who I am, my points and level, today's sign-in, the vote
and today's tasks; and the sign-in button, the same sign-in as 签到 in chat.

The home is the page every link opens, so it costs one read: the member's figures come with
the session (``member_only(standing=True)``), and the open vote and the tasks, the same for
everyone and changed rarely by operators, are kept for ``GLOBAL_TTL_S`` seconds per process
(bench/README.md, issue 19)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from bot.appkeys import CONFIG, DB
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only
from bot.member_center.render import notice_of, page
from handlers.levels.services import levels_of
from handlers.signin import services as signin
from storage import polls, task_definitions
from storage.polls import Poll
from storage.task_definitions import TaskDefinition

# A vote opened or a task added shows on the home within this many seconds.
GLOBAL_TTL_S = 5.0


@dataclass(frozen=True)
class Globals:
    """What the home shows every member alike: the open vote and the first active tasks."""

    poll: Poll | None
    tasks: tuple[TaskDefinition, ...]
    until: float  # the event loop's clock


GLOBALS = web.AppKey("member_center_home_globals", list[Globals])  # [] or [the current one]


async def globals_of(request: web.Request) -> Globals:
    kept, now = request.app[GLOBALS], asyncio.get_running_loop().time()
    if kept and kept[0].until > now:
        return kept[0]
    async with request.app[DB].read() as s:
        poll = await polls.current(s)
        tasks = tuple((await task_definitions.active(s))[:5])
    kept[:] = [Globals(poll, tasks, now + GLOBAL_TTL_S)]
    return kept[0]


@member_only(standing=True)
async def home(request: web.Request) -> web.Response:
    visitor, config = request[VISITOR], request.app[CONFIG]
    assert visitor.standing is not None  # read with the session
    levels = levels_of(config)
    balance, pending, lifetime = visitor.standing.balance, visitor.standing.pending, visitor.standing.lifetime
    streak, signed = visitor.standing.streak, visitor.standing.signed
    shared = await globals_of(request)
    following = levels.next_tier(lifetime)
    progress = None
    if following is not None:
        floor = max((t.min_points for t in levels.tiers if t.min_points <= lifetime), default=0)
        progress = int(100 * (lifetime - floor) / max(1, following.min_points - floor))
    return page(request, "home.html", notice=notice_of(request), balance=balance, pending=pending,
                lifetime=lifetime, level=levels.tier(lifetime), following=following, progress=progress,
                streak=streak, signed=signed, signin=signin.settings(config), poll=shared.poll, tasks=shared.tasks)


@member_only
async def checkin(request: web.Request) -> web.StreamResponse:
    settings = signin.settings(request.app[CONFIG])
    if settings is None:
        raise web.HTTPNotFound(reason="签到未开启")
    raise back(request, "m_home", await act(request, text=settings.keyword))
