"""Task check-ins (打卡) for other surfaces: the active tasks, and an operator's review of a
check-in that waits for approval."""
from __future__ import annotations

from bot.context import Context
from handlers.points.services import Credit, Earned, celebrate, earn
from handlers.tasks.config import TaskConfig
from storage import audit, task_definitions, tasks
from storage.models import Member, TaskDefinition

__all__ = ["TaskConfig", "current", "done_text", "review"]


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


async def review(ctx: Context, checkin_id: int, *, approve: bool) -> bool:
    """An operator approves (points credited) or rejects a pending check-in; audited. False if
    it is not pending."""
    settled = await tasks.settle(ctx.session, checkin_id, approve=approve)
    await audit.record(ctx.session, actor=ctx.actor, action="task.approve" if approve else "task.reject",
                       result="ok" if settled else "refused", now=ctx.now, args={"checkin": checkin_id})
    if settled is None:
        return False
    if approve:
        row = await ctx.session.get(TaskDefinition, settled.task)
        task = as_config(row) if row is not None else None
        earned = await earn(ctx, [Credit(settled.points, f"task-credit:{settled.id}", f"打卡 {settled.task}")],
                            member_id=settled.member_id, issuer=ctx.actor,
                            pending_days=task.pending_days if task is not None else 0)
        member = await ctx.session.get(Member, settled.member_id)
        assert member is not None
        text = (done_text(ctx, task, earned) if task is not None else
                ctx.texts("task_done", task=settled.task, points=settled.points, balance=earned.balance))
        ctx.send(text, to=member.external_id, channel=member.channel)
        await celebrate(ctx, earned)
    return True
