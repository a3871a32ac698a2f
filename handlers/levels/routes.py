"""「等级」: the member's tier, lifetime points and the way to the next tier."""
from __future__ import annotations

from bot import filters
from bot.context import Context
from bot.router import Keyword, Router
from handlers.levels.config import LEVELS
from storage import points

router = Router("levels")


@router.message(filters.Text("等级", "我的等级"), keyword=Keyword("等级", "level_about"))
async def show_level(ctx: Context) -> None:
    levels = ctx.config[LEVELS]
    lifetime = await points.lifetime(ctx.session, ctx.member.id)
    following = levels.next_tier(lifetime)
    way = (ctx.texts("level_next", needed=following.min_points - lifetime, next_level=following.name)
           if following else ctx.texts("level_top"))
    ctx.reply(ctx.texts("level_info", level=levels.tier(lifetime), lifetime=lifetime, next=way))
