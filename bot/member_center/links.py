"""Links into the member center: ``{member_center}`` and ``{member_center:<page>}`` in playbooks,
broadcasts and welcomes (``bot.links``), each carrying its campaign (``?c=``); a page opened
with a campaign counts the member's visit once a day (``storage.campaigns``), for the console's
figures per playbook and group."""
from __future__ import annotations

import logging

from aiohttp import web

from bot import periods
from bot.appkeys import CONFIG, DB
from bot.config import Config
from bot.links import PARAM, LinkTarget
from bot.member_center.auth import VISITOR, Handler, now_of
from bot.member_center.config import MEMBER_CENTER
from storage import campaigns
from storage.engine import is_transient

log = logging.getLogger("siyu.member_center")
# The pages a link may name, and their paths under /m/ ("#checkin": the sign-in on the home page).
PAGES = {"": "", "checkin": "#checkin", "mall": "mall", "tasks": "tasks", "votes": "votes", "ranks": "ranks",
         "me": "me"}


def root(config: Config) -> str | None:
    """The member center's address for members' links: ``[server] public_url`` + /m/ (None while off)."""
    return f"{config.server.base_url}/m/" if config[MEMBER_CENTER].enabled else None


TARGET = LinkTarget("member_center", PAGES, root)


def campaign_code(request: web.Request) -> str | None:
    """The campaign a link carried, if it looks like one (a garbled one is no campaign)."""
    code = request.query.get(PARAM, "")
    return code if campaigns.CODE.fullmatch(code) else None


def next_path(request: web.Request) -> str:
    """Where to come back after signing in: this page, with its campaign (nothing else of the
    query: the sandbox's ``as``, WeCom's ``code`` and ``state`` are spent)."""
    path = request.path if request.path != "/m" else "/m/"
    code = campaign_code(request)
    return f"{path}?{PARAM}={code}" if code else path


async def record(request: web.Request, code: str) -> None:
    """Count the signed-in member's visit through the campaign ``code`` (once a member and day)."""
    visitor, now = request[VISITOR], now_of(request)
    day = periods.local_day(now, request.app[CONFIG].zone)
    async with request.app[DB].transaction() as s:
        campaign = await campaigns.campaign_of(s, code)
        if campaign is not None:
            await campaigns.record_visit(s, visitor.member_id, campaign, day, now=now)


@web.middleware
async def count_visits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page shown to a signed-in member with ``?c=``: their visit is counted (after the page
    is made: a forged campaign, or a busy database, costs the member nothing)."""
    response = await handler(request)
    if request.method != "GET" or response.status >= 400 or VISITOR not in request:
        return response
    if (code := campaign_code(request)) is not None:
        try:
            await record(request, code)
        except Exception as exc:  # the page is made: a visit not counted must not cost the member it
            if is_transient(exc):
                log.warning("member center: visit through campaign %s not counted: database busy", code)
            else:
                log.exception("member center: visit through campaign %s not counted", code)
    return response


def install(app: web.Application) -> None:
    app.middlewares.append(count_visits)
