"""What a member asks about their points: "积分" (balance, pending, recent entries, what expires
soon) and "等级" (tier, lifetime points, the way to the next tier)."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot import filters
from bot.context import Context
from bot.router import Router
from storage import points

router = Router("points")
RECENT = 5
EXPIRY_WARNING = timedelta(days=30)


@router.message(filters.Text("积分", "我的积分"))
async def show_points(ctx: Context) -> None:
    member, zone = ctx.member.id, ZoneInfo(ctx.config.checkin.timezone)
    balance, waiting = await points.balance(ctx.session, member), await points.pending(ctx.session, member)
    entries = await points.recent(ctx.session, member, RECENT)
    lines = [ctx.texts("points_header", balance=balance)]
    if waiting:
        lines.append(ctx.texts("points_pending", pending=waiting))
    if entries:
        lines.append(ctx.texts("points_recent"))
        lines += [ctx.texts("points_entry", date=e.created_at.astimezone(zone).strftime("%m-%d"), reason=e.reason,
                            delta=f"{e.delta:+d}") for e in entries]
    else:
        lines.append(ctx.texts("points_none"))
    soon, first = await points.expiring(ctx.session, member, before=ctx.now + EXPIRY_WARNING)
    if soon and first is not None:
        lines.append(ctx.texts("points_expiring", points=soon, date=first.astimezone(zone).strftime("%Y-%m-%d")))
    ctx.reply("\n".join(lines))


@router.message(filters.Text("等级", "我的等级"))
async def show_level(ctx: Context) -> None:
    levels = ctx.config.levels
    lifetime = await points.lifetime(ctx.session, ctx.member.id)
    following = levels.next_tier(lifetime)
    way = (ctx.texts("level_next", needed=following.min_points - lifetime, next_level=following.name)
           if following else ctx.texts("level_top"))
    ctx.reply(ctx.texts("level_info", level=levels.tier(lifetime), lifetime=lifetime, next=way))
