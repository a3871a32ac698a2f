"""「打卡 <任务>」 for the check-ins of a whole batch at once (issue 20): the same rules and
answers as one at a time (KOC types, proof, caps per day, week and month, the daily points
cap, approval, pending days, lifecycle, level-ups), in a few statements for all of them
rather than a few per check-in. One check-in alone is a batch of one."""
from __future__ import annotations

from bot import periods
from bot.context import Context
from handlers.lifecycle.services import after_purchase
from handlers.points.services import Credit, celebrate, daily_cap, earn_each, over_caps
from handlers.signin.services import acknowledge_in_group, digest_window
from handlers.tasks.config import TaskConfig
from handlers.tasks.services import done_text
from storage import community, tasks

PERIODS = ("day", "week", "month")

CheckIn = tuple[Context, TaskConfig, str | None]  # the update, its task, its proof


async def check_in_all(items: list[CheckIn]) -> None:
    """Check in every item. A member's items are taken in turn (the member lock keeps a
    member's updates apart, so a batch has at most one each; a second would see the first)."""
    while items:
        seen: set[int] = set()
        now: list[CheckIn] = []
        later: list[CheckIn] = []
        for item in items:
            (later if item[0].member.id in seen else now).append(item)
            seen.add(item[0].member.id)
        await _check_in(now)
        items = later


async def _check_in(items: list[CheckIn]) -> None:
    allowed: list[CheckIn] = []
    for ctx, task, proof in items:
        if task.koc_types and (await community.attributes(ctx.session, ctx.member.id)).get("koc_type") \
                not in task.koc_types:
            ctx.reply(ctx.texts("task_not_for_you", task=task.name, types="、".join(task.koc_types)))
        elif task.proof and not proof:
            ctx.reply(ctx.texts("task_needs_proof", task=task.name))
        else:
            allowed.append((ctx, task, proof))
    if not allowed:
        return
    first = allowed[0][0]
    counts: dict[str, dict[tuple[int, str], int]] = {}
    for period in PERIODS:  # one count per period for the whole batch, where a task caps it
        pairs = [(c.member.id, t.name) for c, t, _ in allowed if _limit(t, period)]
        since, _ = periods.current(period, first.now, first.zone)
        counts[period] = await tasks.counts_since_many(first.session, pairs, since)
    open_: list[CheckIn] = []
    for ctx, task, proof in allowed:
        hit = next((p for p in PERIODS if _limit(task, p) and counts[p][(ctx.member.id, task.name)] >= _limit(task, p)),
                   None)
        if hit is not None:
            ctx.reply(ctx.texts("task_capped", task=task.name, period=ctx.texts(f"period_{hit}"),
                                limit=_limit(task, hit)))
        else:
            open_.append((ctx, task, proof))
    direct = [(c, t) for c, t, _ in open_ if not t.approval]
    over = dict(zip((id(c) for c, _ in direct), await over_caps([c for c, _ in direct], [t.points for _, t in direct]),
                    strict=True))
    chosen = [(c, t, p) for c, t, p in open_ if not over.get(id(c), False)]
    for ctx, _, _ in open_:
        if over.get(id(ctx), False):
            ctx.reply(ctx.texts("points_capped", cap=daily_cap(ctx)))
    ids = await tasks.record_many(first.session, [
        {"member_id": c.member.id, "task": t.name, "points": t.points, "proof": p,
         "status": "pending" if t.approval else "credited", "key": f"task:{c.update.key}"}
        for c, t, p in chosen], now=first.now)
    recorded = [(c, t, ids[f"task:{c.update.key}"]) for c, t, _ in chosen if f"task:{c.update.key}" in ids]
    for ctx, task, _ in recorded:  # (a check-in not recorded is a retry of one already recorded)
        if task.approval:
            ctx.reply(ctx.texts("task_pending", task=task.name, points=task.points))
    credited = [(c, t, i) for c, t, i in recorded if not t.approval]
    for days in sorted({t.pending_days for _, t, _ in credited}):  # one credit per pending period
        group = [(c, t, i) for c, t, i in credited if t.pending_days == days]
        earned = await earn_each([c for c, _, _ in group],
                                 [[Credit(t.points, f"task-credit:{i}", f"打卡 {t.name}")] for _, t, i in group],
                                 pending_days=days)
        for (ctx, task, _), done in zip(group, earned, strict=True):
            await after_purchase(ctx, task.name)  # a purchase task (晒单) raises the lifecycle stage at once
            text = done_text(ctx, task, done)
            if digest_window(ctx) and not days:  # pending points keep their own, longer line
                acknowledge_in_group(ctx, text, head=ctx.texts("task_digest_head"), kind="task", item=ctx.texts(
                    "task_digest_item", name=ctx.display_name, task=task.name, points=task.points))
            else:
                ctx.reply(text)
            await celebrate(ctx, done)


def _limit(task: TaskConfig, period: str) -> int:
    return {"day": task.per_day, "week": task.per_week, "month": task.per_month}[period]
