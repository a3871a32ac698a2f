"""/api/rewards, /api/redemptions, /api/koc/applications: the catalog and the decisions on it."""
from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlmodel import col

import handlers.koc.services as koc
from bot.api.base import ApiError, Body, JsonInt, acting, answer, body, int_param, ok, path_int, require
from bot.appkeys import DB
from storage import rewards
from storage.models import KocApplication, Member, Redemption, Reward


def reward_json(r: Reward) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "cost": r.cost, "stock": r.stock, "reserved": r.reserved,
            "fulfilled": r.fulfilled, "active": r.active, "per_member_limit": r.per_member_limit,
            "min_level": r.min_level, "approval": r.approval, "description": r.description}


@require("viewer")
async def list_rewards(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        found = (await session.execute(select(Reward).order_by(col(Reward.id)))).scalars()
        return ok({"rewards": [reward_json(r) for r in found]})


class NewReward(Body):
    name: str = Field(min_length=1, max_length=64)
    cost: JsonInt = Field(gt=0, le=10_000_000)
    stock: JsonInt = Field(ge=0, le=10_000_000)
    per_member_limit: JsonInt = Field(0, ge=0, le=1_000_000)
    approval: bool = False


@require("operator")
async def add_reward(request: web.Request) -> web.Response:
    new = await body(request, NewReward)
    async with acting(request, "api.reward.add", new.model_dump()) as ctx:
        known = (await ctx.session.execute(select(Reward).where(col(Reward.name) == new.name))).scalar_one_or_none()
        # A restock keeps the reward's rules: a cost (or limit, approval) it would not apply is refused.
        sent = new.model_fields_set & {"cost", "per_member_limit", "approval"}
        differs = [f"{field} {getattr(known, field)}" for field in sorted(sent)
                   if known is not None and getattr(known, field) != getattr(new, field)]
        if differs:
            raise ApiError(409, "reward_differs", f"{new.name!r} exists with {', '.join(differs)}: a restock by name "
                                                  "keeps them; send them as they are")
        spec = rewards.RewardSpec(new.name, new.cost, new.stock, new.per_member_limit, approval=new.approval)
        reward_id = await rewards.add(ctx.session, spec, now=ctx.now)
        reward = await rewards.get(ctx.session, reward_id)
        assert reward is not None
        return answer(request, {"reward": reward_json(reward)}, status=201)


def redemption_json(x: Redemption, member: Member) -> dict[str, Any]:
    return {"id": x.id, "member": member.external_id, "reward_id": x.reward_id, "cost": x.cost, "status": x.status,
            "code": x.code, "created_at": x.created_at.isoformat()}


STATUSES = ("awaiting_approval", "reserved", "fulfilled", "cancelled")


@require("viewer", query=("status", "limit"))
async def list_redemptions(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(400, "bad_request", f"status is one of {', '.join(STATUSES)}")
    limit = int_param(request, "limit", 50, 1, 500)
    async with request.app[DB].read() as session:
        query = (select(Redemption, Member)
                 .join(Member, col(Member.id) == col(Redemption.member_id))
                 .order_by(col(Redemption.id).desc()))
        if status:
            query = query.where(col(Redemption.status) == status)
        rows = (await session.execute(query.limit(limit))).all()
        return ok({"redemptions": [redemption_json(x, m) for x, m in rows]})


@require("operator")
async def settle_redemption(request: web.Request) -> web.Response:
    redemption_id, action = path_int(request, "redemption"), request.match_info["action"]
    if action not in ("approve", "reject", "fulfil"):
        raise ApiError(404, "not_found", "the action is approve, reject or fulfil")
    async with acting(request, f"api.redemption.{action}", {"redemption": redemption_id}) as ctx:
        row = await ctx.session.get(Redemption, redemption_id)
        if row is None:
            raise ApiError(404, "not_found", f"no redemption {redemption_id}")
        done = (await rewards.approve(ctx.session, redemption_id) if action == "approve"
                else await rewards.fulfil(ctx.session, redemption_id, now=ctx.now) if action == "fulfil"
                else await rewards.cancel(ctx.session, redemption_id, now=ctx.now))
        if not done:
            raise ApiError(409, "wrong_state",
                           f"redemption {redemption_id} is {row.status}: it cannot be {action}d now")
        member, reward = await ctx.session.get(Member, row.member_id), await ctx.session.get(Reward, row.reward_id)
        assert member is not None and reward is not None
        ctx.send(ctx.texts(f"redemption_member_{action}", name=reward.name, cost=row.cost),
                 to=member.external_id, channel=member.channel)
        settled = (await ctx.session.execute(select(Redemption).where(col(Redemption.id) == redemption_id)
                                             .execution_options(populate_existing=True))).scalar_one()
        return answer(request, {"redemption": redemption_json(settled, member)})


def application_json(a: KocApplication, member: Member) -> dict[str, Any]:
    return {"id": a.id, "member": member.external_id, "name": member.name, "score": a.score,
            "recommended_type": a.recommended_type, "status": a.status, "approved_type": a.approved_type,
            "reason": a.reason, "created_at": a.created_at.isoformat()}


@require("viewer", query=("status", "limit"))
async def list_applications(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in ("pending", "approved", "rejected"):
        raise ApiError(400, "bad_request", "status is pending, approved or rejected")
    limit = int_param(request, "limit", 50, 1, 500)
    async with request.app[DB].read() as session:
        rows = (await session.execute(select(KocApplication, Member)
                                      .join(Member, col(Member.id) == col(KocApplication.member_id))
                                      .where(col(KocApplication.status) == status)
                                      .order_by(col(KocApplication.id))
                                      .limit(limit))).all()
        return ok({"applications": [application_json(a, m) for a, m in rows]})


class Approval(Body):
    type: Literal["分享官", "内容官", "体验官", "带货官"] | None = None  # default: the recommended type


class Rejection(Body):
    reason: str = Field(min_length=1, max_length=200)


async def _decide(request: web.Request, *, approve: bool, role: str | None, reason: str | None) -> web.Response:
    application_id = path_int(request, "application")
    action = "approve" if approve else "reject"
    async with acting(request, f"api.koc.{action}",
                      {"application": application_id, "type": role, "reason": reason}) as ctx:
        if await ctx.session.get(KocApplication, application_id) is None:
            raise ApiError(404, "not_found", f"no application {application_id}")
        decided = await koc.decide(ctx, application_id, approve=approve, role=role, reason=reason)
        if decided is None:
            raise ApiError(409, "wrong_state", f"application {application_id} was decided already")
        member = await ctx.session.get(Member, decided.member_id)
        assert member is not None
        return answer(request, {"application": application_json(decided, member)})


@require("operator")
async def approve_application(request: web.Request) -> web.Response:
    return await _decide(request, approve=True, role=(await body(request, Approval)).type, reason=None)


@require("operator")
async def reject_application(request: web.Request) -> web.Response:
    return await _decide(request, approve=False, role=None, reason=(await body(request, Rejection)).reason)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/rewards", list_rewards)
    router.add_post("/api/rewards", add_reward)
    router.add_get("/api/redemptions", list_redemptions)
    router.add_post("/api/redemptions/{redemption}/{action}", settle_redemption)
    router.add_get("/api/koc/applications", list_applications)
    router.add_post("/api/koc/applications/{application}/approve", approve_application)
    router.add_post("/api/koc/applications/{application}/reject", reject_application)
