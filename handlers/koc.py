"""Starting KOC screening: the member asks (``[koc] keyword``), or is invited once their
activity passes ``[koc] activity_threshold`` messages. Operators decide with
``flows.koc_screening.decide`` (the /koc commands come with the operators' commands)."""
from __future__ import annotations

from bot import filters
from bot.config import Config
from bot.context import Context
from bot.middlewares import Next
from bot.router import Router
from flows import koc_screening
from storage import flows as member_flows
from storage import koc


async def start_screening(ctx: Context) -> None:
    """Start a screening for the sender, unless an application of theirs waits for review."""
    if await koc.pending_of(ctx.session, ctx.member.id) is not None:
        ctx.send(ctx.texts("koc_pending"), to=ctx.update.sender)
        return
    assert ctx.dispatcher.flows is not None
    await ctx.dispatcher.flows.start(ctx, koc_screening.NAME)


def router(config: Config) -> Router:
    r = Router("koc")

    @r.message(filters.Text(config.koc.keyword), filters.private)
    async def apply(ctx: Context) -> None:
        await start_screening(ctx)

    return r


async def invite_the_active(next_: Next, ctx: Context) -> None:
    """A middleware: when a member's messages reach the threshold, invite them once (after the
    message was handled, so the message itself is not taken as an answer)."""
    await next_(ctx)
    threshold = ctx.config.koc.activity_threshold
    u = ctx.update
    if (threshold and ctx.config.koc.enabled and u.event is None and ctx.member.message_count == threshold
            and await member_flows.load(ctx.session, ctx.member.id, koc_screening.NAME) is None):
        await start_screening(ctx)
