"""「打卡 <任务或编号> [证明]」 in a group or one-to-one (「打卡」 alone lists the tasks with numbers),
with caps per day, week and month, proof, operator approval, pending days and KOC-type tasks;
and the operators' ``/task``."""
from __future__ import annotations

from typing import get_args

from pydantic import ValidationError

from bot import filters
from bot.commandline import UsageError, parse
from bot.context import Context
from bot.numbers import FULL_WIDTH_DIGITS, parse_id, parse_int
from bot.router import Keyword, Router
from handlers.koc.services import KocType
from handlers.tasks.config import TaskConfig
from handlers.tasks.services import CheckIn, check_in_all, get, review, standing, waiting
from storage import task_definitions
from storage.models import Member, TaskDefinition

router = Router("tasks")
KEYWORD = "打卡"
SHOWN = 20  # pending check-ins listed in chat
PROOF_SHOWN = 100  # characters of a proof in that list
REASON_MAX = 200


async def task_checkin_all(ctxs: list[Context]) -> None:
    """「打卡」 for every update of a batch that sent it (the route's batch stage): the active
    tasks read once, the check-ins made together (``handlers.tasks.checkins``)."""
    tasks_now, counts = await standing(ctxs)
    items: list[CheckIn] = []
    for ctx in ctxs:
        words = (ctx.update.text or "").strip()[len(KEYWORD):].strip().split(maxsplit=1)
        name = words[0] if words else ""
        if not name:
            if not tasks_now:
                ctx.reply(ctx.texts("task_menu_empty"))
                continue
            ctx.reply(ctx.texts("task_menu", tasks="\n".join(
                ctx.texts("task_menu_line", number=i, task=t.name, points=t.points)
                for i, t in enumerate(tasks_now, 1))))
            continue
        # By name, or by its number in the menu ("打卡 1").
        by_name = {t.name: t for t in tasks_now}
        number = parse_int(name.translate(FULL_WIDTH_DIGITS), 1, len(tasks_now))  # 打卡 ２ as 兑换 ２: members' digits
        task = by_name.get(name) or (tasks_now[number - 1] if number is not None else None)
        if task is None:
            if ctx.update.chat is None:  # in a group, "打卡了吗" is chat, not a mistake to answer
                ctx.reply(ctx.texts("task_unknown", task=name[:32], tasks="、".join(by_name) or "—"))
            continue
        items.append((ctx, task, words[1].strip() if len(words) > 1 else None, None))
    await check_in_all(items, counts)


@router.message(filters.StartsWith(KEYWORD), keyword=Keyword(KEYWORD, "task_about"), batch=task_checkin_all)
async def task_checkin(ctx: Context) -> None:
    await task_checkin_all([ctx])


def _rules(ctx: Context, task: TaskDefinition) -> str:
    """What a member must bring or be for this task (proof, an operator's approval, KOC types)."""
    rules = [ctx.texts(key) for key, on in (("task_rule_proof", task.proof), ("task_rule_approval", task.approval))
             if on]
    if task.koc_types:
        rules.append(ctx.texts("task_rule_koc", types="、".join(task.koc_types)))
    return "".join(f"，{rule}" for rule in rules)


async def list_pending(ctx: Context) -> None:
    """The review queue, oldest first, with each check-in's number and proof."""
    rows = await waiting(ctx.session, limit=SHOWN + 1)
    lines = [ctx.texts("task_pending_line", id=c.id, who=m.name or m.external_id, external_id=m.external_id,
                       task=c.task, points=c.points, at=c.at.astimezone(ctx.zone).strftime("%m-%d %H:%M"),
                       proof=(c.proof or "—")[:PROOF_SHOWN]) for c, m in rows[:SHOWN]]
    if len(rows) > SHOWN:
        lines.append(ctx.texts("task_pending_more", shown=SHOWN))
    ctx.reply("\n".join(lines) or ctx.texts("task_pending_none"))


async def decide(ctx: Context, checkin_id: int, *, approve: bool, reason: str | None) -> None:
    found = await get(ctx.session, checkin_id)
    if found is None:
        raise UsageError(f"没有编号为 {checkin_id} 的打卡（/task pending 列出待审核的编号）")
    settled = await review(ctx, checkin_id, approve=approve, reason=reason)
    if settled is None:
        await ctx.session.refresh(found)  # decided by someone else since it was read
        ctx.reply(ctx.texts("task_review_stale", id=checkin_id, state=ctx.texts(f"task_state_{found.status}")))
        return
    member = await ctx.session.get(Member, settled.member_id)
    who = (member.name or member.external_id) if member else "—"
    ctx.reply(ctx.texts(f"task_reviewed_{'approve' if approve else 'reject'}", id=checkin_id, who=who,
                        task=settled.task, points=settled.points))


@router.command("task", role="operator")
async def task_command(ctx: Context) -> None:
    """管理打卡任务、审核待审核的打卡
    /task list
    /task add <名称> <积分> [day=每天上限] [week=每周上限] [month=每月上限]
              [proof=yes] [approval=yes] [pending=待生效天数] [koc=分享官,内容官]
    /task disable <名称>
    /task pending
    /task approve <打卡编号>
    /task reject <打卡编号> [原因]"""
    args = parse(ctx.args, options=("day", "week", "month", "proof", "approval", "pending", "koc"))
    action = args.choice(0, "动作", ("list", "add", "disable", "pending", "approve", "reject"))
    if action == "list":
        rows = await task_definitions.every(ctx.session)
        ctx.reply("\n".join(ctx.texts("task_line", task=t.name, points=t.points, day=t.per_day, week=t.per_week,
                                      month=t.per_month, state=ctx.texts("reward_on" if t.active else "reward_off"),
                                      rules=_rules(ctx, t), source=ctx.texts.label("task_source", t.source))
                            for t in rows)
                  or ctx.texts("task_list_none"))
        return
    if action == "pending":
        await list_pending(ctx)
        return
    if action in ("approve", "reject"):
        given = args.word(1, "打卡编号")
        checkin_id = parse_id(given.removeprefix("#"))  # "#5" as the list shows it, or 5
        if checkin_id is None:
            raise UsageError(f"打卡编号要是 /task pending 列出的数字，不是「{given[:32]}」")
        await decide(ctx, checkin_id, approve=action == "approve",
                     reason=" ".join(args.words[2:])[:REASON_MAX] or None)
        return
    name = args.word(1, "名称")
    if action == "disable":
        if not await task_definitions.disable(ctx.session, name):
            raise UsageError(f"没有进行中的任务「{name[:32]}」")
        ctx.reply(ctx.texts("task_disabled", task=name))
        return
    spec: dict[str, object] = {"name": name, "points": args.number(2, "积分", low=1, high=1_000_000)}
    for key, field in (("day", "per_day"), ("week", "per_week"), ("month", "per_month"), ("pending", "pending_days")):
        value = args.option(key)
        if value is not None:
            number = parse_int(value, 0, 1_000_000)
            if number is None:
                raise UsageError(f"{key} 要是 0 到 1000000 之间的整数")
            spec[field] = number
    koc_types = [k for k in (args.option("koc") or "").replace("，", ",").split(",") if k]
    known = get_args(KocType)
    if unknown := [k for k in koc_types if k not in known]:
        raise UsageError(f"koc 要是 {' / '.join(known)} 中的一个或几个（逗号分开），不是「{unknown[0][:32]}」")
    spec |= {"proof": args.option("proof") in ("yes", "true", "1"),
             "approval": args.option("approval") in ("yes", "true", "1"),
             "koc_types": koc_types}
    try:
        task = TaskConfig.model_validate(spec)
    except ValidationError as exc:
        raise UsageError("；".join(str(e["msg"]) for e in exc.errors())) from None
    if not await task_definitions.add(ctx.session, task.model_dump(), by=ctx.actor):
        raise UsageError(f"已经有进行中的任务「{name[:32]}」")
    ctx.reply(ctx.texts("task_added", task=task.name, points=task.points))
