"""What other features ask of levels: the tier of some lifetime points, and the level-up a
credit brought (told to the member)."""
from __future__ import annotations

from bot.config import Config
from bot.context import Context
from handlers.levels.config import LEVELS, LevelsConfig
from storage import community
from storage.models import Member

__all__ = ["after_credit", "levels_of"]


def levels_of(config: Config) -> LevelsConfig:
    """The ``[levels]`` tiers."""
    return config[LEVELS]


async def after_credit(ctx: Context, before: int, after: int, *, member_id: int | None = None) -> None:
    """Call after crediting ``after - before`` lifetime points to the sender (or ``member_id``):
    on a new tier the member is congratulated and the level recorded. The sender is told where
    they spoke (in their group too when ``announce_in_group``); another member, one-to-one."""
    levels = ctx.config[LEVELS]
    old, new = levels.tier(before), levels.tier(after)
    if old == new:
        return
    member = member_id if member_id is not None else ctx.member.id
    await community.set_attributes(ctx.session, member, {"level": new})
    sender = ctx.sender_member  # the console and the API credit members without being one
    if sender is None or member != sender.id:
        row = await ctx.session.get(Member, member)
        assert row is not None
        ctx.send(ctx.texts("level_up", name=row.name or row.external_id, level=new, points=after),
                 to=row.external_id, channel=row.channel)
        return
    text = ctx.texts("level_up", name=ctx.display_name, level=new, points=after)
    if ctx.update.chat is not None and levels.announce_in_group:
        ctx.send(text, chat=ctx.update.chat)
    else:
        ctx.send(text, to=ctx.update.sender)
