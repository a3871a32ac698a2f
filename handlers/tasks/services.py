"""Task check-ins (打卡) for every surface: a member's check-in (the chat's 「打卡」 and the member
center's form both check in through ``check_in``), the active tasks, and an operator's review of
a check-in that waits for approval (the chat command, the console and the REST API all review
through here)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from bot import periods
from bot.context import Context
from handlers.lifecycle.services import after_purchase
from handlers.points.services import Credit, Earned, celebrate, daily_cap, earn, earn_each, over_caps
from handlers.signin.services import acknowledge_in_group, digest_window
from handlers.tasks.config import TaskConfig
from storage import audit, community, task_definitions, tasks
from storage.models import Member, TaskCheckin, TaskDefinition

__all__ = ["STATUSES", "CheckIn", "TaskConfig", "check_in", "check_in_all", "current", "done_text", "get", "review",
           "waiting"]

STATUSES = tasks.STATUSES
PENDING = tasks.PENDING


def as_config(task: TaskDefinition | Row[Any]) -> TaskConfig:
    return TaskConfig.model_validate({k: getattr(task, k) for k in ("name", *task_definitions.RULES)})


async def current(ctx: Context) -> list[TaskConfig]:
    """The active tasks, in menu order (the config's, then operators')."""
    return [as_config(t) for t in await task_definitions.active(ctx.session)]


Counts = dict[str, dict[tuple[int, str], int]]  # period → (member, task) → check-ins this period


async def standing(ctxs: list[Context]) -> tuple[list[TaskConfig], Counts]:
    """The active tasks (``current``) and the check-ins of the senders of ``ctxs`` to each in
    this day, week and month, in one read: what a batch of 「打卡」 needs before it records."""
    first = ctxs[0]
    since = {p: periods.current(p, first.now, first.zone)[0] for p in PERIODS}
    rows, counts = await tasks.active_with_counts(first.session, sorted({c.member.id for c in ctxs}), since)
    return [as_config(t) for t in rows], counts


def done_text(ctx: Context, task: TaskConfig, earned: Earned) -> str:
    if task.pending_days:
        return ctx.texts("task_done_pending", task=task.name, points=task.points, days=task.pending_days,
                         balance=earned.balance, pending=earned.pending)
    return ctx.texts("task_done", task=task.name, points=task.points, balance=earned.balance)


async def check_in(ctx: Context, task: TaskConfig, proof: str | None, *, photo: str | None = None) -> None:
    """The member checks in to ``task`` with ``proof`` (a link or words) and/or ``photo`` (the
    stored name of a picture the member center took): the chat's batch of one (``check_in_all``).
    What the member is told goes to ``ctx.reply``."""
    await check_in_all([(ctx, task, proof, photo)])


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


# 「打卡」 for the check-ins of a whole batch at once (issue 20): the same rules and answers as
# one at a time (KOC types, proof, caps per day, week and month, the daily points cap, approval,
# pending days, lifecycle, level-ups), in a few statements for all of them rather than a few per
# check-in. One check-in alone (the member center's form) is a batch of one.
PERIODS = ("day", "week", "month")

CheckIn = tuple[Context, TaskConfig, str | None, str | None]  # the update, its task, its proof, its photo


async def check_in_all(items: list[CheckIn], counts: Counts | None = None) -> None:
    """Check in every item. A member's items are taken in turn (the member lock keeps a
    member's updates apart, so a batch has at most one each; a second would see the first).
    ``counts``: what ``standing`` read for this batch (else the caps are read here)."""
    while items:
        seen: set[int] = set()
        now: list[CheckIn] = []
        later: list[CheckIn] = []
        for item in items:
            (later if item[0].member.id in seen else now).append(item)
            seen.add(item[0].member.id)
        await _check_in(now, counts)
        items, counts = later, None  # the first round's check-ins count for the next


async def _check_in(items: list[CheckIn], known: Counts | None) -> None:
    allowed: list[CheckIn] = []
    for ctx, task, proof, photo in items:
        if task.koc_types and (await community.attributes(ctx.session, ctx.member.id)).get("koc_type") \
                not in task.koc_types:
            ctx.reply(ctx.texts("task_not_for_you", task=task.name, types="、".join(task.koc_types)))
        elif task.proof and not proof and not photo:
            ctx.reply(ctx.texts("task_needs_proof", task=task.name))
        else:
            allowed.append((ctx, task, proof, photo))
    if not allowed:
        return
    first = allowed[0][0]
    counts: Counts = {}
    for period in PERIODS:  # one count per period for the whole batch, where a task caps it
        pairs = [(c.member.id, t.name) for c, t, _, _ in allowed if _limit(t, period)]
        since, _ = periods.current(period, first.now, first.zone)
        counts[period] = ({pair: known[period].get(pair, 0) for pair in pairs} if known is not None
                          else await tasks.counts_since_many(first.session, pairs, since))
    open_: list[CheckIn] = []
    for ctx, task, proof, photo in allowed:
        hit = next((p for p in PERIODS if _limit(task, p) and counts[p][(ctx.member.id, task.name)] >= _limit(task, p)),
                   None)
        if hit is not None:
            ctx.reply(ctx.texts("task_capped", task=task.name, period=ctx.texts(f"period_{hit}"),
                                limit=_limit(task, hit)))
        else:
            open_.append((ctx, task, proof, photo))
    direct = [(c, t) for c, t, _, _ in open_ if not t.approval]
    over = dict(zip((id(c) for c, _ in direct), await over_caps([c for c, _ in direct], [t.points for _, t in direct]),
                    strict=True))
    chosen = [item for item in open_ if not over.get(id(item[0]), False)]
    for ctx, _, _, _ in open_:
        if over.get(id(ctx), False):
            ctx.reply(ctx.texts("points_capped", cap=daily_cap(ctx)))
    ids = await tasks.record_many(first.session, [
        {"member_id": c.member.id, "task": t.name, "points": t.points, "proof": p, "photo": ph,
         "status": "pending" if t.approval else "credited", "key": f"task:{c.update.key}"}
        for c, t, p, ph in chosen], now=first.now)
    recorded = [(c, t, ids[f"task:{c.update.key}"]) for c, t, _, _ in chosen if f"task:{c.update.key}" in ids]
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
