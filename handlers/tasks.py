"""Task check-ins (打卡): "打卡 <任务或编号> [证明]" in a group or one-to-one ("打卡" alone lists
the tasks with numbers), with caps per day, week and month, proof, operator approval, pending
days and KOC-type tasks from ``[[tasks]]``."""
from __future__ import annotations

from bot import filters
from bot.config import Config, TaskConfig
from bot.context import Context
from bot.router import Router
from handlers import periods
from handlers.earning import Credit, celebrate, earn, over_cap
from storage import community, tasks

KEYWORD = "打卡"


async def check_in(ctx: Context, task: TaskConfig, proof: str | None) -> None:
    member = ctx.member.id
    if task.koc_types and (await community.attributes(ctx.session, member)).get("koc_type") not in task.koc_types:
        ctx.reply(ctx.texts("task_not_for_you", task=task.name, types="、".join(task.koc_types)))
        return
    if task.proof and not proof:
        ctx.reply(ctx.texts("task_needs_proof", task=task.name))
        return
    zone = ctx.config.checkin.timezone
    for period, limit in (("day", task.per_day), ("week", task.per_week), ("month", task.per_month)):
        since, _ = periods.current(period, ctx.now, zone)
        if limit and await tasks.count_since(ctx.session, member, task.name, since) >= limit:
            ctx.reply(ctx.texts("task_capped", task=task.name, period=ctx.texts(f"period_{period}"), limit=limit))
            return
    if not task.approval and await over_cap(ctx, task.points):
        ctx.reply(ctx.texts("points_capped", cap=ctx.config.points.daily_cap))
        return
    status = "pending" if task.approval else "credited"
    checkin = await tasks.record(ctx.session, member, task.name, points=task.points, proof=proof, status=status,
                                 key=f"task:{ctx.update.key}", now=ctx.now)
    if checkin is None:
        return  # a retry of a check-in already recorded
    if task.approval:
        ctx.reply(ctx.texts("task_pending", task=task.name, points=task.points))
        return
    earned = await earn(ctx, [Credit(task.points, f"task-credit:{checkin}", f"打卡 {task.name}")],
                        pending_days=task.pending_days)
    ctx.reply(done_text(ctx, task, earned.balance, earned.pending))
    await celebrate(ctx, earned)


def done_text(ctx: Context, task: TaskConfig, balance: int, pending: int) -> str:
    if task.pending_days:
        return ctx.texts("task_done_pending", task=task.name, points=task.points, days=task.pending_days,
                         balance=balance, pending=pending)
    return ctx.texts("task_done", task=task.name, points=task.points, balance=balance)


def router(config: Config) -> Router:
    r = Router("tasks")
    by_name = {t.name: t for t in config.tasks}

    @r.message(filters.StartsWith(KEYWORD))
    async def task_checkin(ctx: Context) -> None:
        words = (ctx.update.text or "").strip()[len(KEYWORD):].strip().split(maxsplit=1)
        name = words[0] if words else ""
        if not name:
            ctx.reply(ctx.texts("task_menu", tasks="\n".join(
                ctx.texts("task_menu_line", number=i, task=t.name, points=t.points) for i, t in enumerate(config.tasks, 1))))
            return
        # By name, or by its number in the menu ("打卡 1").
        task = by_name.get(name) or (config.tasks[int(name) - 1] if name.isdigit() and 0 < int(name) <= len(config.tasks)
                                     else None)
        if task is None:
            ctx.reply(ctx.texts("task_unknown", task=name[:32], tasks="、".join(by_name) or "—"))
            return
        await check_in(ctx, task, words[1].strip() if len(words) > 1 else None)

    return r


async def review(ctx: Context, checkin_id: int, *, approve: bool) -> bool:
    """An operator approves (points credited) or rejects a pending check-in; audited. False if
    it is not pending."""
    from storage import audit
    from storage.models import Member

    actor = f"{ctx.update.channel}:{ctx.update.sender}"
    settled = await tasks.settle(ctx.session, checkin_id, approve=approve)
    await audit.record(ctx.session, actor=actor, action="task.approve" if approve else "task.reject",
                       result="ok" if settled else "refused", now=ctx.now, args={"checkin": checkin_id})
    if settled is None:
        return False
    if approve:
        task = next((t for t in ctx.config.tasks if t.name == settled.task), None)
        earned = await earn(ctx, [Credit(settled.points, f"task-credit:{settled.id}", f"打卡 {settled.task}")],
                            member_id=settled.member_id, issuer=actor,
                            pending_days=task.pending_days if task is not None else 0)
        member = await ctx.session.get(Member, settled.member_id)
        assert member is not None
        text = (done_text(ctx, task, earned.balance, earned.pending) if task is not None else
                ctx.texts("task_done", task=settled.task, points=settled.points, balance=earned.balance))
        ctx.send(text, to=member.external_id, channel=member.channel)
        await celebrate(ctx, earned)
    return True
