"""The points catalog in chat: 「兑换」 lists it, 「兑换 <编号>」 asks to confirm; operators manage
the rewards (``/reward``) and settle redemptions (``/redemption`` approve, reject, fulfil)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel import col

import handlers.rewards.flow as flow
from bot import filters
from bot.commandline import UsageError, parse
from bot.context import Context
from bot.numbers import parse_id, parse_int
from bot.router import Keyword, Router
from handlers.levels.services import levels_of
from handlers.rewards.services import ACTIONS, data_of, refusal, settle
from storage import points, rewards
from storage.models import Member, Redemption, Reward

router = Router("rewards")
PICK = re.compile(r"^兑换\s*(\d{1,9})$")
PENDING_SHOWN = 20


def _conditions(ctx: Context, reward: Reward) -> str:
    notes = []
    if reward.min_level:
        notes.append(ctx.texts("redeem_note_level", level=reward.min_level))
    if reward.ends_at is not None:
        notes.append(ctx.texts("redeem_note_until", date=reward.ends_at.astimezone(ctx.zone).strftime("%m-%d %H:%M")))
    if reward.approval:
        notes.append(ctx.texts("redeem_note_approval"))
    return "（" + "，".join(notes) + "）" if notes else ""


@router.message(filters.Text("兑换"), keyword=Keyword("兑换", "redeem_about"))
async def show_catalog(ctx: Context) -> None:
    catalog = await rewards.catalog(ctx.session, now=ctx.now)
    if not catalog:
        ctx.reply(ctx.texts("redeem_list_empty"))
        return
    lines = [ctx.texts("redeem_list_header", balance=await points.balance(ctx.session, ctx.member.id))]
    lines += [ctx.texts("redeem_list_line", id=r.id, name=r.name, cost=r.cost, stock=r.stock) + _conditions(ctx, r)
              for r in catalog]
    ctx.reply("\n".join([*lines, ctx.texts("redeem_list_footer")]))


@router.message(filters.Regex(PICK), keyword=Keyword("兑换 1", ""))  # known; listed as 兑换
async def pick(ctx: Context) -> None:
    match = PICK.match((ctx.update.text or "").strip())
    assert match is not None
    reward = await rewards.get(ctx.session, int(match.group(1)))
    if reward is None or not reward.active:
        ctx.reply(ctx.texts("redeem_unknown", id=match.group(1)))
        return
    data = data_of(reward, await points.balance(ctx.session, ctx.member.id))
    # What would refuse it anyway is said now: 确认 is asked only when it can work.
    reason, level = await refusal(ctx.session, ctx.config, ctx.member.id, reward, now=ctx.now)
    if reason is not None:
        ctx.reply(ctx.texts(flow.REFUSED_TEXTS[reason], **data, mine=level))
        return
    await ctx.flows.start(ctx, flow.NAME, data)


@router.command("redemption", role="operator")
async def redemption_command(ctx: Context) -> None:
    """处理积分兑换：查看待处理的兑换，审核通过、拒绝（退回积分）或标记已发放
    /redemption pending
    /redemption approve <兑换单号>
    /redemption reject <兑换单号>
    /redemption fulfil <兑换单号>"""
    action, _, rest = ctx.args.strip().partition(" ")
    if action == "pending" or not action:
        rows: Sequence[Any] = (await ctx.session.execute(
            select(col(Redemption.id), col(Redemption.status), col(Redemption.cost), col(Reward.name),
                   col(Member.name).label("member"), col(Member.external_id))
            .join(Reward, col(Reward.id) == col(Redemption.reward_id))
            .join(Member, col(Member.id) == col(Redemption.member_id))
            .where(col(Redemption.status).in_((rewards.AWAITING_APPROVAL, rewards.RESERVED)))
            .order_by(col(Redemption.id)).limit(PENDING_SHOWN))).all()
        lines = [ctx.texts("redemption_line", id=r.id, member=r.member or r.external_id, reward=r.name, cost=r.cost,
                           status=ctx.texts(f"redemption_{r.status}")) for r in rows]
        ctx.reply("\n".join(lines) if lines else ctx.texts("redemption_none"))
        return
    redemption_id = parse_id(rest.strip())
    if action not in ACTIONS or redemption_id is None:
        ctx.reply(ctx.texts("command_bad_args", problem=ctx.texts("redemption_bad_args"),
                            usage=ctx.texts("redemption_usage")))
        return
    if await settle(ctx, redemption_id, action) is None:
        ctx.reply(ctx.texts("redemption_refused", id=redemption_id))
        return
    ctx.reply(ctx.texts("redemption_settled", id=redemption_id, action=ctx.texts(f"redemption_action_{action}")))


@router.command("reward", role="operator")
async def reward_command(ctx: Context) -> None:
    """管理积分商城的奖品
    /reward list
    /reward add <名称> <积分> <库存> [limit=每人限兑] [level=最低等级] [approval=yes]
    /reward stock <编号> <增减数量，如 +20 或 -5>
    /reward disable <编号>"""
    args = parse(ctx.args, options=("limit", "level", "approval"))
    action = args.choice(0, "动作", ("list", "add", "stock", "disable"))
    if action == "list":
        rows = list((await ctx.session.execute(select(Reward).order_by(col(Reward.id)))).scalars())
        ctx.reply("\n".join(ctx.texts("reward_line", id=r.id, name=r.name, cost=r.cost, stock=r.stock,
                                      reserved=r.reserved, fulfilled=r.fulfilled,
                                      state=ctx.texts("reward_on" if r.active else "reward_off")) for r in rows)
                  or ctx.texts("redeem_list_empty"))
        return
    if action == "add":
        name = args.word(1, "名称")
        if len(name) > 64:
            raise UsageError("名称最多 64 个字")
        cost, stock = args.number(2, "积分", low=1, high=10_000_000), args.number(3, "库存", low=0, high=10_000_000)
        limit = parse_int(args.option("limit", "0") or "0", 0, 1_000_000)
        if limit is None:
            raise UsageError("limit 要是 0 到 1000000 之间的整数")
        level = args.option("level")
        tiers = levels_of(ctx.config).names
        if level is not None and level not in tiers:
            raise UsageError(f"level 要是 {' / '.join(tiers)} 之一")
        reward_id = await rewards.add(ctx.session, rewards.RewardSpec(
            name, cost, stock, limit, level, approval=args.option("approval") in ("yes", "true", "1")),
            now=ctx.now)
        ctx.reply(ctx.texts("reward_added", id=reward_id, name=name, cost=cost, stock=stock))
        return
    reward_id = args.number(1, "编号", low=1, high=2**31 - 1)
    reward = await rewards.get(ctx.session, reward_id)
    if reward is None:
        raise UsageError(f"没有编号 {reward_id} 的奖品")
    if action == "stock":
        change = args.number(2, "增减数量", low=-10_000_000, high=10_000_000)
        if not await rewards.restock(ctx.session, reward_id, change):
            raise UsageError(f"库存只剩 {reward.stock}，不能减 {-change}")
    else:
        await rewards.disable(ctx.session, reward_id)
    reward = await rewards.get(ctx.session, reward_id)
    assert reward is not None
    ctx.reply(ctx.texts("reward_changed", id=reward.id, name=reward.name, stock=reward.stock,
                        state=ctx.texts("reward_on" if reward.active else "reward_off")))
