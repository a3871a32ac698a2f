"""Task check-ins (打卡) for other surfaces: the active tasks, and an operator's review of a
check-in that waits for approval (the chat command, the console and the REST API all review
through here)."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from handlers.lifecycle.services import after_purchase
from handlers.points.services import Credit, Earned, celebrate, earn
from handlers.tasks.config import TaskConfig
from storage import audit, task_definitions, tasks
from storage.models import Member, TaskCheckin, TaskDefinition

__all__ = ["STATUSES", "TaskConfig", "current", "done_text", "get", "review", "waiting"]

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
