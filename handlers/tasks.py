"""Task check-ins (打卡): "打卡 <任务> [证明]" in a group or one-to-one, with caps per day, week
and month, proof, operator approval and KOC-type tasks from ``[[tasks]]``."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot import filters
from bot.config import Config, TaskConfig
from bot.context import Context
from bot.router import Router
from handlers import levels
from storage import community, points, tasks

KEYWORD = "打卡"


def period_starts(now: datetime, zone: str) -> dict[str, datetime]:
    """Where the member's local day, week (Monday) and month began, as instants."""
    local = now.astimezone(ZoneInfo(zone))
    day = datetime.combine(local.date(), time(), tzinfo=local.tzinfo)
    return {"day": day, "week": day - timedelta(days=local.weekday()), "month": day.replace(day=1)}


async def check_in(ctx: Context, task: TaskConfig, proof: str | None) -> None:
    member = ctx.member.id
    if task.koc_types and (await community.attributes(ctx.session, member)).get("koc_type") not in task.koc_types:
        ctx.reply(ctx.texts("task_not_for_you", task=task.name, types="、".join(task.koc_types)))
        return
    if task.proof and not proof:
        ctx.reply(ctx.texts("task_needs_proof", task=task.name))
        return
    starts = period_starts(ctx.now, ctx.config.checkin.timezone)
    for period, limit in (("day", task.per_day), ("week", task.per_week), ("month", task.per_month)):
        if limit and await tasks.count_since(ctx.session, member, task.name, starts[period]) >= limit:
            ctx.reply(ctx.texts("task_capped", task=task.name, period=ctx.texts(f"period_{period}"), limit=limit))
            return
    status = "pending" if task.approval else "credited"
    checkin = await tasks.record(ctx.session, member, task.name, points=task.points, proof=proof, status=status,
                                 key=f"task:{ctx.update.key}", now=ctx.now)
    if checkin is None:
        return  # a retry of a check-in already recorded
    if task.approval:
        ctx.reply(ctx.texts("task_pending", task=task.name, points=task.points))
        return
    posted = await points.credit(ctx.session, member, task.points, key=f"task-credit:{checkin}",
                                 reason=f"打卡 {task.name}", now=ctx.now)
    ctx.reply(ctx.texts("task_done", task=task.name, points=task.points, balance=posted.balance))
    await levels.after_credit(ctx, posted.lifetime - task.points, posted.lifetime)


def router(config: Config) -> Router:
    r = Router("tasks")
    by_name = {t.name: t for t in config.tasks}

    @r.message(filters.StartsWith(KEYWORD))
    async def task_checkin(ctx: Context) -> None:
        words = (ctx.update.text or "").strip()[len(KEYWORD):].strip().split(maxsplit=1)
        name = words[0] if words else ""
        task = by_name.get(name)
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

    settled = await tasks.settle(ctx.session, checkin_id, approve=approve)
    await audit.record(ctx.session, actor=f"{ctx.update.channel}:{ctx.update.sender}",
                       action="task.approve" if approve else "task.reject", result="ok" if settled else "refused",
                       now=ctx.now, args={"checkin": checkin_id})
    if settled is None:
        return False
    if approve:
        posted = await points.credit(ctx.session, settled.member_id, settled.points, key=f"task-credit:{settled.id}",
                                     reason=f"打卡 {settled.task}", now=ctx.now, issuer=f"{ctx.update.channel}:{ctx.update.sender}")
        member = await ctx.session.get(Member, settled.member_id)
        assert member is not None
        ctx.send(ctx.texts("task_done", task=settled.task, points=settled.points, balance=posted.balance),
                 to=member.external_id, channel=member.channel)
    return True
