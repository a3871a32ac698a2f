"""/api/tasks/checkins: task check-ins (打卡) that wait for an operator, and the decision on
them (through ``handlers.tasks.services.review``, as the chat command and the console)."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

import handlers.tasks.services as task_reviews
from bot.api.base import ApiError, Body, acting, answer, body, int_param, ok, path_int, require
from bot.appkeys import DB
from storage.models import Member, TaskCheckin


def checkin_json(c: TaskCheckin, member: Member) -> dict[str, Any]:
    return {"id": c.id, "member": member.external_id, "name": member.name, "task": c.task, "points": c.points,
            "proof": c.proof, "status": c.status, "at": c.at.isoformat()}


@require("viewer", query=("status", "limit"))
async def list_checkins(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in task_reviews.STATUSES:
        raise ApiError(400, "bad_request", f"status is one of {', '.join(task_reviews.STATUSES)}")
    limit = int_param(request, "limit", 50, 1, 500)
    async with request.app[DB].read() as session:
        rows = await task_reviews.waiting(session, status, limit=limit)
        return ok({"checkins": [checkin_json(c, m) for c, m in rows]})


class Approval(Body):
    pass


class Rejection(Body):
    reason: str | None = Field(None, min_length=1, max_length=200)  # told to the member


async def _decide(request: web.Request, checkin_id: int, *, approve: bool, reason: str | None) -> web.Response:
    action = "approve" if approve else "reject"
    async with acting(request, f"api.task.{action}", {"checkin": checkin_id, "reason": reason}) as ctx:
        found = await task_reviews.get(ctx.session, checkin_id)
        if found is None:
            raise ApiError(404, "not_found", f"no check-in {checkin_id}")
        settled = await task_reviews.review(ctx, checkin_id, approve=approve, reason=reason)
        if settled is None:
            raise ApiError(409, "wrong_state", f"check-in {checkin_id} is not pending: it was decided already "
                                               "or needed no approval")
        member = await ctx.session.get(Member, settled.member_id)
        assert member is not None
        return answer(request, {"checkin": checkin_json(settled, member)})


@require("operator")
async def approve_checkin(request: web.Request) -> web.Response:
    checkin_id = path_int(request, "checkin")
    await body(request, Approval)  # {}: a body as every POST of the API has (an empty one is refused)
    return await _decide(request, checkin_id, approve=True, reason=None)


@require("operator")
async def reject_checkin(request: web.Request) -> web.Response:
    checkin_id = path_int(request, "checkin")
    reason = (await body(request, Rejection)).reason
    # Only spaces (Python's and JSON Schema's, whose \s adds U+FEFF) is no reason to tell a member.
    if reason is not None and all(c.isspace() or c == "\ufeff" for c in reason):
        raise ApiError(422, "invalid", "reason must not be only spaces")
    return await _decide(request, checkin_id, approve=False, reason=reason)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/tasks/checkins", list_checkins)
    router.add_post("/api/tasks/checkins/{checkin}/approve", approve_checkin)
    router.add_post("/api/tasks/checkins/{checkin}/reject", reject_checkin)
