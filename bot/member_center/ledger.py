"""积分明细 (my points ledger): every entry in Chinese, points still pending, and what expires
soon and when: what 「积分」 says in chat, in full."""
from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.appkeys import DB
from bot.member_center.auth import VISITOR, member_only, now_of
from bot.member_center.render import page
from storage import points

SHOWN = 100  # the latest entries
EXPIRY_WARNING = timedelta(days=30)  # as 「积分」 in chat warns


@member_only
async def ledger(request: web.Request) -> web.Response:
    visitor, now = request[VISITOR], now_of(request)
    async with request.app[DB].read() as s:
        balance = await points.balance(s, visitor.member_id)
        pending = await points.pending(s, visitor.member_id)
        entries = await points.recent(s, visitor.member_id, SHOWN)
        expiring, first = await points.expiring(s, visitor.member_id, before=now + EXPIRY_WARNING)
    return page(request, "points.html", notice="", balance=balance, pending=pending, entries=entries,
                expiring=expiring, first_expiry=first, shown=SHOWN)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/m/points", ledger, name="m_points")
