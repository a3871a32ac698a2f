"""/api/handovers: hand a staff member's customers and groups to another (在职/离职继承), as
``/handover`` does in chat (through ``handlers.handover.services``), and read where one stands.
The channel carries it out later: the answer is 202 with the handover ``pending``."""
from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

import handlers.handover.services as handover
from bot.api.base import ApiError, Body, acting, answer, body, ok, path_int, require
from bot.appkeys import DB
from storage.handovers import Handover

# A refusal's key → (HTTP status, code, message for the client).
REFUSALS = {"handover_bad_staff": (422, "invalid", "from and to are WeCom UserIDs: letters, digits and _ . @ -"),
            "handover_same_staff": (409, "same_staff", "from and to must be two different staff members"),
            "handover_no_channel": (409, "no_channel", "no channel that can transfer contacts is enabled ([wecom])"),
            "handover_busy": (409, "busy", "this staff member has a handover that has not finished")}


async def handover_json(session: Any, h: Handover) -> dict[str, Any]:
    return {"id": h.id, "from": h.from_staff, "to": h.to_staff, "scope": h.scope, "mode": h.mode, "status": h.status,
            "error": h.error, "created_at": h.created_at.isoformat(),
            "finished_at": h.finished_at.isoformat() if h.finished_at else None,
            "items": await handover.counts(session, h.id)}


class HandoverRequest(Body):
    from_: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)
    scope: Literal["customers", "groups", "all"] = "all"
    mode: Literal["onjob", "resigned"] | None = None


@require("operator")
async def create_handover(request: web.Request) -> web.Response:
    asked = await body(request, HandoverRequest)
    args = {"from": asked.from_, "to": asked.to, "scope": asked.scope, "mode": asked.mode}
    async with acting(request, "api.handover.create", args) as ctx:
        try:
            h = await handover.request(ctx.session, ctx.config, from_staff=asked.from_, to_staff=asked.to,
                                       scope=asked.scope, mode=asked.mode, requested_by=ctx.actor, now=ctx.now)
        except handover.Refused as exc:
            status, code, message = REFUSALS[exc.key]
            raise ApiError(status, code, message) from None
        return answer(request, {"handover": await handover_json(ctx.session, h)}, status=202)


@require("viewer")
async def get_handover(request: web.Request) -> web.Response:
    handover_id = path_int(request, "handover")
    async with request.app[DB].read() as session:
        h = await handover.get(session, handover_id)
        if h is None:
            raise ApiError(404, "not_found", f"no handover {handover_id}")
        return ok({"handover": await handover_json(session, h)})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/handovers", create_handover)
    router.add_get("/api/handovers/{handover}", get_handover)
