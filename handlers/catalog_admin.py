"""Operators' commands for what the community runs on: rewards, playbooks (SOP), numbers."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.context import Context
from bot.router import Router
from handlers import stats
from handlers.commandline import UsageError, parse
from handlers.operators import actor
from storage import broadcasts, rewards
from storage.models import Reward

router = Router("catalog_admin")


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
        rows = list((await ctx.session.execute(select(Reward).order_by(Reward.id))).scalars())
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
        limit = args.option("limit", "0") or "0"
        if not limit.isdigit():
            raise UsageError("limit 要是整数")
        level = args.option("level")
        tiers = [t.name for t in ctx.config.levels.tiers]
        if level is not None and level not in tiers:
            raise UsageError(f"level 要是 {' / '.join(tiers)} 之一")
        reward_id = await rewards.add(ctx.session, rewards.RewardSpec(
            name, cost, stock, int(limit), level, approval=args.option("approval") in ("yes", "true", "1")), now=ctx.now)
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


@router.command("sop", role="operator")
async def sop_command(ctx: Context) -> None:
    """查看、暂停或恢复定时话题（SOP）
    /sop list
    /sop pause <名称>
    /sop resume <名称>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("list", "pause", "resume"))
    names = [p.name for p in ctx.config.sop]
    if action == "list":
        paused = await broadcasts.paused(ctx.session)
        zone = ZoneInfo(ctx.config.checkin.timezone)
        lines = []
        for p in ctx.config.sop:
            last = await broadcasts.recent(ctx.session, p.name, limit=1)
            when = p.cron or (p.at.isoformat() if p.at else None) or (
                f"建群第 {p.after_group_created_days} 天" if p.after_group_created_days is not None
                else f"入群第 {p.after_member_joined_days} 天")
            state = "off" if not p.enabled else "paused" if p.name in paused else "on"
            lines.append(ctx.texts("sop_line", name=p.name, when=when, state=ctx.texts(f"sop_state_{state}"),
                                   last=f"{last[0].slot.astimezone(zone).strftime('%m-%d %H:%M')} {ctx.texts(f'broadcast_state_{last[0].status}')}"
                                   if last else "—"))
        ctx.reply("\n".join(lines) or ctx.texts("sop_none"))
        return
    name = args.choice(1, "名称", names) if names else args.word(1, "名称")
    if name not in names:
        raise UsageError(f"没有名为「{name[:32]}」的定时话题")
    await broadcasts.set_paused(ctx.session, name, action == "pause", by=actor(ctx), now=ctx.now)
    ctx.reply(ctx.texts(f"sop_{action}d", name=name))


@router.command("stats", role="viewer")
async def stats_command(ctx: Context) -> None:
    """查看社群数据：今天和最近 7 天"""
    ctx.reply(await stats.summary(ctx.session, ctx.config, ctx.texts, ctx.now))

