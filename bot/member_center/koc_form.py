"""申请 KOC as a form: the chat screening's questions on one page, scored by the same rubric and
queued for the same review (``handlers.koc.services.submit_application``); the page shows where
the member's latest application stands. The chat screening stays: one application waits at a time,
whichever way it came."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.appkeys import CONFIG, DB
from bot.context import Context
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only
from bot.member_center.render import notice_of, page
from handlers.koc import services as koc

FIELDS = ("bought", "product", "activities", "followers", "preference", "hours")


async def _koc_page(request: web.Request, *, notice: str = "", status: int = 200,
                    typed: dict[str, Any] | None = None) -> web.Response:
    visitor = request[VISITOR]
    async with request.app[DB].read() as s:
        application = await koc.latest_of(s, visitor.member_id)
    return page(request, "koc.html", status=status, notice=notice or notice_of(request), application=application,
                open=koc.screening_open(request.app[CONFIG]), bought=koc.BOUGHT, activities=koc.ACTIVITIES,
                platforms=koc.PLATFORMS, preferences=koc.PREFERENCES, typed=typed or {})


@member_only
async def koc_page(request: web.Request) -> web.Response:
    return await _koc_page(request)


@member_only
async def apply(request: web.Request) -> web.StreamResponse:
    if not koc.screening_open(request.app[CONFIG]):
        raise web.HTTPNotFound(reason="KOC 申请暂未开放")
    form = await request.post()
    typed: dict[str, Any] = {name: form.get(name, "") for name in FIELDS}
    chosen = form.getall("platforms", [])
    if not all(isinstance(v, str) for v in typed.values()) or not all(isinstance(p, str) for p in chosen):
        raise web.HTTPBadRequest(reason="表单不完整，请刷新后再试")
    typed["platforms"] = [str(p) for p in chosen]
    try:
        answers = koc.check_answers(**typed)
    except koc.AnswerRefused as refused:
        return await _koc_page(request, notice=str(refused), status=400, typed=typed)

    async def submit(ctx: Context) -> None:
        submitted = await koc.submit_application(ctx, answers)
        if submitted is None:
            ctx.reply(ctx.texts("koc_pending"))
        else:
            ctx.reply(ctx.texts("koc_submitted", type=submitted[1]))

    raise back(request, "m_koc", await act(request, action=submit))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/m/koc", koc_page, name="m_koc")
    r.add_post("/m/koc", apply, name="m_koc_apply")
