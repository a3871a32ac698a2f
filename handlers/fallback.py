"""The fallback: a one-to-one message nothing else took gets a friendly "here is what I can do".

In groups the bot stays quiet: answering every unmatched line would be spam.
"""
from __future__ import annotations

from bot import filters
from bot.context import Context
from bot.router import Router
from handlers.help import command_list

router = Router("fallback")


@router.fallback(filters.private)
async def fallback(ctx: Context) -> None:
    # The member's commands: reading the sender's role would cost every chat line a query;
    # an operator gets theirs with /help.
    ctx.reply(ctx.texts("fallback", name=ctx.display_name, commands=command_list(ctx)))
