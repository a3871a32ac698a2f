"""「会员中心」 in chat, on every channel (微信客服 too, where a WeChat user cannot be reached in
a group): the answer is the member center's link, carrying the campaign of that chat channel
and group, so the console counts who came that way."""
from __future__ import annotations

from bot import filters, links
from bot.config import Config
from bot.context import Context
from bot.router import Keyword, Router

KEYWORD = "会员中心"
TEXT = "member_center_link"  # operators may put {member_center:<page>} in it (``Feature.link_texts``)


def router(config: Config) -> Router:
    r = Router("member_center")

    @r.message(filters.Text(KEYWORD), keyword=Keyword(KEYWORD, "member_center_about"))
    async def link(ctx: Context) -> None:
        filled = await links.values(ctx.session, ctx.config, ctx.texts.template(TEXT),
                                    source=f"chat:{ctx.update.channel}", group_id=ctx.group.id if ctx.group else None,
                                    now=ctx.now)
        ctx.reply(ctx.texts(TEXT, **links.for_texts(ctx.config, filled)))

    return r
