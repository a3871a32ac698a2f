"""The member center's votes page (投票): the open poll with its options and counts (as the chat
shows them), my vote, changed until the poll closes, and the results of closed polls. A vote
goes through ``handlers.votes.services.cast``, as the chat's 「投票 编号」 does."""
from __future__ import annotations

from aiohttp import web

from bot.appkeys import DB
from bot.context import Context
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only, now_of
from bot.member_center.params import form_int
from bot.member_center.render import notice_of, page
from bot.numbers import parse_id
from handlers.votes import services as votes

CLOSED_SHOWN = 3  # closed polls whose results the page shows
MAX_OPTIONS = 20  # a poll has 2 to 20 options (/vote open)


@member_only
async def votes_page(request: web.Request) -> web.Response:
    visitor = request[VISITOR]
    async with request.app[DB].read() as s:
        poll = await votes.current(s)
        counts, mine = {}, None
        if poll is not None:
            counts = {t.option: t.votes for t in await votes.tally(s, poll)}
            mine = await votes.mine(s, poll.id, visitor.member_id)
        closed = [(p, await votes.tally(s, p), await votes.mine(s, p.id, visitor.member_id))
                  for p in await votes.closed(s, limit=CLOSED_SHOWN)]
    open_now = poll is not None and (poll.closes_at is None or poll.closes_at > now_of(request))
    return page(request, "votes.html", notice=notice_of(request), poll=poll, counts=counts, mine=mine,
                open_now=open_now, total=sum(counts.values()), closed=closed)


@member_only
async def vote(request: web.Request) -> web.StreamResponse:
    """My vote for an option of the poll in the path (open polls take it; any member may vote)."""
    poll_id = parse_id(request.match_info["poll"])
    if poll_id is not None:
        async with request.app[DB].read() as s:
            poll_id = poll_id if await votes.get(s, poll_id) is not None else None
    if poll_id is None:
        raise web.HTTPNotFound(reason="没有这个投票")
    option = form_int((await request.post()).get("option"), "选项", 1, MAX_OPTIONS)

    async def cast(ctx: Context) -> None:
        await votes.cast(ctx, poll_id, option)

    raise back(request, "m_votes", await act(request, action=cast))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/m/votes", votes_page, name="m_votes")
    app.router.add_post("/m/votes/{poll}/vote", vote, name="m_vote")
