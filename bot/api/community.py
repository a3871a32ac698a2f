"""/api/groups, /api/broadcasts, /api/audit."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.api.base import ApiError, Body, acting, answer, body, int_param, ok, path_int, require
from bot.appkeys import DB, DISPATCHER
from handlers.broadcasts.services import api_card, parse_target, plan, text_problem
from storage import audit, broadcasts
from storage.models import Group


@require("viewer", query=("limit", "offset"))
async def list_groups(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    async with request.app[DB].read() as session:
        found = (await session.execute(select(Group).order_by(col(Group.id)).limit(limit).offset(offset))).scalars()
        return ok({"groups": [{"id": g.external_id, "channel": g.channel, "name": g.name, "status": g.status,
                               "owner": g.owner, "messages": g.message_count} for g in found]})


class NewLink(Body):
    """A link card (WeCom's limits, in bytes, are checked by the broadcasts feature)."""

    title: str = Field(max_length=128)
    url: str = Field(max_length=2048)
    desc: str = Field("", max_length=512)
    picurl: str = Field("", max_length=2048)


class NewMiniProgram(Body):
    title: str = Field(max_length=64)
    appid: str = Field(max_length=32)
    page: str = Field(max_length=1024)
    pic_media_id: str = Field(max_length=512)


class NewBroadcast(Body):
    target: str = Field(min_length=1, max_length=2000)  # all, tag:<标签>, or group ids separated by commas
    text: str = Field(min_length=1, max_length=4000)
    link: NewLink | None = None
    miniprogram: NewMiniProgram | None = None

    def card(self) -> dict[str, Any] | None:
        if self.link is not None:
            return {"type": "link", **self.link.model_dump()}
        if self.miniprogram is not None:
            return {"type": "miniprogram", **self.miniprogram.model_dump()}
        return None


async def _status(session: AsyncSession, broadcast_id: int) -> dict[str, Any]:
    b = await broadcasts.get(session, broadcast_id)
    if b is None:
        raise ApiError(404, "not_found", f"no broadcast {broadcast_id}")
    return {"id": b.id, "status": b.status, "source": b.source, "slot": b.slot.isoformat(), "reason": b.reason,
            "card": broadcasts.card_of(b), "deliveries": dict(await broadcasts.progress(session, b.id))}


@require("operator")
async def create_broadcast(request: web.Request) -> web.Response:
    """Sent at once (within quiet hours and caps): the API call is the confirmation."""
    new = await body(request, NewBroadcast)
    target = parse_target(new.target)
    card = new.card()
    d = request.app[DISPATCHER]
    if new.link is not None and new.miniprogram is not None:
        raise ApiError(422, "invalid_card", d.texts("card_one_kind"))
    if (problem := text_problem(d.config, d.texts, new.text)) is not None:
        raise ApiError(422, "invalid_text", problem)
    if card is not None:
        card, problem = api_card(d.config, d.texts, card)
        if problem is not None:
            raise ApiError(422, "invalid_card", problem)
    async with acting(request, "api.broadcast", new.model_dump()) as ctx:
        if target is None or not await broadcasts.targets(ctx.session, target):
            raise ApiError(404, "no_groups", f"no group matches {new.target[:64]!r} (all, tag:<标签> or group ids "
                                             "separated by commas)")
        broadcast_id = await broadcasts.create(
            ctx.session, key=ctx.update.key, source="adhoc", slot=ctx.now, template=new.text, target=target,
            status=broadcasts.PLANNED, created_by=f"api:{ctx.update.sender}", now=ctx.now, card=card)
        assert broadcast_id is not None
        await plan(ctx.session, ctx.config, ctx.texts, broadcast_id, now=ctx.now)
        return answer(request, await _status(ctx.session, broadcast_id), status=201)


@require("viewer")
async def get_broadcast(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        return ok(await _status(session, path_int(request, "broadcast")))


@require("admin", query=("limit",))
async def list_audit(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, 1, 1000)
    async with request.app[DB].read() as session:
        entries = await audit.latest(session, limit=limit)
        return ok({"entries": [{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                "args": e.args, "result": e.result} for e in entries]})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/groups", list_groups)
    router.add_post("/api/broadcasts", create_broadcast)
    router.add_get("/api/broadcasts/{broadcast}", get_broadcast)
    router.add_get("/api/audit", list_audit)
