"""Task check-ins (打卡) for every surface: a member's check-in (the chat's 「打卡」 and the member
center's form both check in through ``check_in``), the active tasks, and an operator's review of
a check-in that waits for approval (the chat command, the console and the REST API all review
through here)."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot import periods
from bot.context import Context
from handlers.lifecycle.services import after_purchase
from handlers.points.services import Credit, Earned, celebrate, daily_cap, earn, over_cap
from handlers.tasks.config import TaskConfig
from storage import audit, community, task_definitions, tasks
from storage.models import Member, TaskCheckin, TaskDefinition

__all__ = ["STATUSES", "TaskConfig", "check_in", "current", "done_text", "get", "review", "waiting"]

STATUSES = tasks.STATUSES
PENDING = tasks.PENDING


def as_config(task: TaskDefinition) -> TaskConfig:
    return TaskConfig.model_validate({k: getattr(task, k) for k in ("name", *task_definitions.RULES)})


async def current(ctx: Context) -> list[TaskConfig]:
    """The active tasks, in menu order (the config's, then operators')."""
    return [as_config(t) for t in await task_definitions.active(ctx.session)]


def done_text(ctx: Context, task: TaskConfig, earned: Earned) -> str:
    if task.pending_days:
        return ctx.texts("task_done_pending", task=task.name, points=task.points, days=task.pending_days,
                         balance=earned.balance, pending=earned.pending)
    return ctx.texts("task_done", task=task.name, points=task.points, balance=earned.balance)


async def check_in(ctx: Context, task: TaskConfig, proof: str | None, *, photo: str | None = None) -> int | None:
    """The member checks in to ``task`` with ``proof`` (a link or words) and/or ``photo`` (the
    stored name of a picture the member center took): KOC types, proof, caps per day, week and
    month, the daily points cap, then points now or the approval queue. What the member is told
    goes to ``ctx.reply``; returns the new check-in's id (None: refused, or a retry)."""
    member = ctx.member.id
    if task.koc_types and (await community.attributes(ctx.session, member)).get("koc_type") not in task.koc_types:
        ctx.reply(ctx.texts("task_not_for_you", task=task.name, types="、".join(task.koc_types)))
        return None
    if task.proof and not proof and not photo:
        ctx.reply(ctx.texts("task_needs_proof", task=task.name))
        return None
    for period, limit in (("day", task.per_day), ("week", task.per_week), ("month", task.per_month)):
        since, _ = periods.current(period, ctx.now, ctx.zone)
        if limit and await tasks.count_since(ctx.session, member, task.name, since) >= limit:
            ctx.reply(ctx.texts("task_capped", task=task.name, period=ctx.texts(f"period_{period}"), limit=limit))
            return None
    if not task.approval and await over_cap(ctx, task.points):
        ctx.reply(ctx.texts("points_capped", cap=daily_cap(ctx)))
        return None
    status = "pending" if task.approval else "credited"
    checkin = await tasks.record(ctx.session, member, task.name, points=task.points, proof=proof, status=status,
                                 key=f"task:{ctx.update.key}", now=ctx.now, photo=photo)
    if checkin is None:
        return None  # a retry of a check-in already recorded
    if task.approval:
        ctx.reply(ctx.texts("task_pending", task=task.name, points=task.points))
        return checkin
    earned = await earn(ctx, [Credit(task.points, f"task-credit:{checkin}", f"打卡 {task.name}")],
                        pending_days=task.pending_days)
    await after_purchase(ctx, task.name)  # a purchase task (晒单) raises the lifecycle stage at once
    ctx.reply(done_text(ctx, task, earned))
    await celebrate(ctx, earned)
    return checkin


async def waiting(session: AsyncSession, status: str = PENDING, *, limit: int = 50) -> list[tuple[TaskCheckin, Member]]:
    """Check-ins in ``status`` (default: those waiting for review, oldest first) with their members."""
    return await tasks.of_status(session, status, limit=limit)


async def get(session: AsyncSession, checkin_id: int) -> TaskCheckin | None:
    return await session.get(TaskCheckin, checkin_id)


async def review(ctx: Context, checkin_id: int, *, approve: bool, reason: str | None = None) -> TaskCheckin | None:
    """An operator approves (points credited) or rejects (with an optional ``reason``) a pending
    check-in; the member is told either way, and it is audited. None if it is not pending
    (decided already, by this operator or another at the same moment: points go out once)."""
    settled = await tasks.settle(ctx.session, checkin_id, approve=approve)
    await audit.record(ctx.session, actor=ctx.actor, action="task.approve" if approve else "task.reject",
                       result="ok" if settled else "refused", now=ctx.now,
                       args={"checkin": checkin_id, "reason": reason})
    if settled is None:
        return None
    member = await ctx.session.get(Member, settled.member_id)
    assert member is not None
    if not approve:
        text = (ctx.texts("task_rejected", task=settled.task, reason=reason) if reason
                else ctx.texts("task_rejected_plain", task=settled.task))
        ctx.send(text, to=member.external_id, channel=member.channel)
        return settled
    row = await ctx.session.get(TaskDefinition, settled.task)
    pending_days = as_config(row).pending_days if row is not None else 0
    # The ledger key is the check-in's: even a second credit attempt would post nothing.
    earned = await earn(ctx, [Credit(settled.points, f"task-credit:{settled.id}", f"打卡 {settled.task}")],
                        member_id=settled.member_id, issuer=ctx.actor, pending_days=pending_days)
    text = (ctx.texts("task_approved_pending", task=settled.task, points=settled.points, days=pending_days,
                      balance=earned.balance, pending=earned.pending) if pending_days
            else ctx.texts("task_approved", task=settled.task, points=settled.points, balance=earned.balance))
    ctx.send(text, to=member.external_id, channel=member.channel)
    await celebrate(ctx, earned)
    await after_purchase(ctx, settled.task, member_id=settled.member_id)  # a purchase task's stage
    return settled
