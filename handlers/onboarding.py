"""Starting onboarding: on a new contact, a group join, or a member's first one-to-one message
(``[onboarding] start_on``), unless the member already went through it."""
from __future__ import annotations

from bot.context import Context
from bot.middlewares import Next
from flows import onboarding
from storage import flows as member_flows


async def start_if_new(ctx: Context) -> bool:
    """Start onboarding for the sender unless they were ever in it; True if it started."""
    engine = ctx.dispatcher.flows
    config = ctx.config
    if engine is None or not config.onboarding.enabled or not engine.running(onboarding.NAME):
        return False
    if await member_flows.load(ctx.session, ctx.member.id, onboarding.NAME) is not None:
        return False
    await engine.start(ctx, onboarding.NAME, onboarding.start_data(ctx, config))
    return True


async def on_first_message(next_: Next, ctx: Context) -> None:
    """A middleware (installed when ``first_message`` is in ``start_on``): a member's very first
    one-to-one message starts onboarding (and is the greeting it answers)."""
    u = ctx.update
    if (u.is_private and u.event is None and not u.is_command and ctx.member.message_count == 1
            and await start_if_new(ctx)):
        return
    await next_(ctx)
