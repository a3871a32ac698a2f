"""What operators do in the console: decide KOC applications, review task check-ins, settle
redemptions. Each goes through the same code as the chat command
(``handlers.koc.services.decide``, ``handlers.tasks.services.review``,
``handlers.rewards.services.settle``): the same rules, the same audit entry, the member told the
same way; the console user is the actor (``console:<name>``)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy import select
from sqlmodel import col

import bot.member_center.services as member_center
import handlers.koc.services as koc
import handlers.rewards.services as redemptions
import handlers.tasks.services as task_reviews
from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.console.auth import SESSION, require
from bot.console.params import path_id
from bot.console.render import page
from bot.context import Context
from bot.update import Update
from storage import outbox, rewards
from storage.models import KocApplication, Member, Redemption, Reward

QUEUE_SIZE = 100
REASON_MAX = 200


@asynccontextmanager
async def acting(request: web.Request) -> AsyncIterator[Context]:
    """A transaction with a Context for the signed-in user; what it queued for members goes
    to the outbox with it."""
    dispatcher = request.app[DISPATCHER]
    session_user = request[SESSION].user
    now = dispatcher.clock.now()
    async with request.app[DB].transaction() as session:
        ctx = Context(update=Update(channel="console",
                                    key=f"console:{session_user.name}:{now.isoformat()}:{id(request)}",
                                    sender=session_user.name, at=now),
                      session=session, now=now, texts=dispatcher.texts, dispatcher=dispatcher, role=session_user.role)
        yield ctx
        await outbox.enqueue(session, ctx.outgoing, now=now)


def _back(request: web.Request, name: str, notice: str) -> web.Response:
    location = request.app.router[name].url_for().with_query(notice=notice)
    return web.Response(status=303, headers={"Location": str(location)})


@require("viewer")
async def koc_queue(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        pending = (await session.execute(
            select(KocApplication, Member)
            .join(Member, col(Member.id) == col(KocApplication.member_id))
            .where(col(KocApplication.status) == "pending")
            .order_by(col(KocApplication.id))
            .limit(QUEUE_SIZE))).all()
        decided = (await session.execute(
            select(KocApplication, Member)
            .join(Member, col(Member.id) == col(KocApplication.member_id))
            .where(col(KocApplication.status) != "pending")
            .order_by(col(KocApplication.decided_at).desc())
            .limit(20))).all()
    return page(request, "koc.html", pending=pending, decided=decided, types=koc.TYPES,
                notice=request.query.get("notice", "")[:200])


@require("operator")
async def koc_decide(request: web.Request) -> web.Response:
    application_id = path_id(request, "application", "没有这份申请")
    form = await request.post()
    decision, role, reason = (str(form.get(k, "")).strip() for k in ("decision", "type", "reason"))
    if decision not in ("approve", "reject"):
        raise web.HTTPBadRequest(reason="请选择通过或拒绝")
    if decision == "approve" and role and role not in koc.TYPES:
        raise web.HTTPBadRequest(reason=f"KOC 类型应为 {'、'.join(koc.TYPES)} 之一")
    if decision == "reject" and not reason:
        raise web.HTTPBadRequest(reason="拒绝时请填写理由（会告诉成员）")
    if len(reason) > REASON_MAX:
        raise web.HTTPBadRequest(reason=f"理由最多 {REASON_MAX} 个字")
    async with acting(request) as ctx:
        if await ctx.session.get(KocApplication, application_id) is None:
            raise web.HTTPNotFound(reason="没有这份申请")
        decided = await koc.decide(ctx, application_id, approve=decision == "approve",
                                             role=role or None, reason=reason or None)
    if decided is None:
        return _back(request, "console_koc", f"申请 {application_id} 已被处理过，未做改动")
    verdict = f"已通过（{decided.approved_type}）" if decision == "approve" else "已拒绝"
    return _back(request, "console_koc", f"申请 {application_id} {verdict}，已通知成员")


@require("viewer")
async def tasks_queue(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        pending = await task_reviews.waiting(session, limit=QUEUE_SIZE)
    return page(request, "tasks.html", pending=pending, notice=request.query.get("notice", "")[:200])


@require("viewer")
async def task_photo(request: web.Request) -> web.StreamResponse:
    """The photo a member uploaded with check-in ``checkin`` (by the check-in's number: the file's
    name comes from its row, never from the request)."""
    checkin_id = path_id(request, "checkin", "没有这条打卡")
    async with request.app[DB].read() as session:
        found = await task_reviews.get(session, checkin_id)
    if found is None:
        raise web.HTTPNotFound(reason="没有这条打卡")
    return member_center.photo_response(request.app[CONFIG], found.photo)


@require("operator")
async def task_decide(request: web.Request) -> web.Response:
    checkin_id = path_id(request, "checkin", "没有这条打卡")
    form = await request.post()
    decision, reason = (str(form.get(k, "")).strip() for k in ("decision", "reason"))
    if decision not in ("approve", "reject"):
        raise web.HTTPBadRequest(reason="请选择通过或拒绝")
    if len(reason) > REASON_MAX:
        raise web.HTTPBadRequest(reason=f"理由最多 {REASON_MAX} 个字")
    state = ""
    async with acting(request) as ctx:
        found = await task_reviews.get(ctx.session, checkin_id)
        if found is None:
            raise web.HTTPNotFound(reason="没有这条打卡")
        settled = await task_reviews.review(ctx, checkin_id, approve=decision == "approve",
                                            reason=reason if decision == "reject" and reason else None)
        if settled is None:
            await ctx.session.refresh(found)  # decided by someone else since it was read
            state = ctx.texts(f"task_state_{found.status}")
    if settled is None:
        return _back(request, "console_tasks", f"打卡 #{checkin_id} 已经处理过（{state}），未做改动")
    verdict = f"已通过，发放 {settled.points} 积分" if decision == "approve" else "已拒绝"
    return _back(request, "console_tasks", f"打卡 #{checkin_id} {verdict}，已通知成员")


@require("viewer")
async def rewards_page(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        catalog = list((await session.execute(select(Reward).order_by(col(Reward.id)))).scalars())
        open_rows = (await session.execute(
            select(Redemption, Reward, Member)
            .join(Reward, col(Reward.id) == col(Redemption.reward_id))
            .join(Member, col(Member.id) == col(Redemption.member_id))
            .where(col(Redemption.status).in_((rewards.AWAITING_APPROVAL, rewards.RESERVED)))
            .order_by(col(Redemption.id))
            .limit(QUEUE_SIZE))).all()
    return page(request, "rewards.html", catalog=catalog, open_rows=open_rows,
                notice=request.query.get("notice", "")[:200])


@require("operator")
async def settle_redemption(request: web.Request) -> web.Response:
    redemption_id = path_id(request, "redemption", "没有这个兑换单")
    form = await request.post()
    action = str(form.get("action", ""))
    if action not in redemptions.ACTIONS:
        raise web.HTTPBadRequest(reason="操作应为 approve、fulfil 或 reject")
    async with acting(request) as ctx:
        settled = await redemptions.settle(ctx, redemption_id, action)
    if settled is None:
        return _back(request, "console_rewards", f"兑换单 {redemption_id} 当前状态不能这样处理，未做改动")
    done = ctx.texts(f"redemption_action_{action}")
    return _back(request, "console_rewards", f"兑换单 {redemption_id}：{done}，已通知成员")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/koc", koc_queue, name="console_koc")
    r.add_post("/console/koc/{application}", koc_decide, name="console_koc_decide")
    r.add_get("/console/tasks", tasks_queue, name="console_tasks")
    r.add_post("/console/tasks/{checkin}", task_decide, name="console_task_decide")
    r.add_get("/console/tasks/{checkin}/photo", task_photo, name="console_task_photo")
    r.add_get("/console/rewards", rewards_page, name="console_rewards")
    r.add_post("/console/redemptions/{redemption}", settle_redemption, name="console_settle")
