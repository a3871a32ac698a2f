"""Member levels: a game-like tier by lifetime points, told when a member moves up."""
from __future__ import annotations

from bot.context import Context
from storage import community


async def after_credit(ctx: Context, before: int, after: int) -> None:
    """Call after crediting the sender ``after - before`` lifetime points: on a new tier the
    member is congratulated (in their group too when configured) and the level recorded."""
    levels = ctx.config.levels
    old, new = levels.tier(before), levels.tier(after)
    if old == new:
        return
    await community.set_attributes(ctx.session, ctx.member.id, {"level": new})
    text = ctx.texts("level_up", name=ctx.display_name, level=new, points=after)
    if ctx.update.chat is not None and levels.announce_in_group:
        ctx.send(text, chat=ctx.update.chat)
    else:
        ctx.send(text, to=ctx.update.sender)
