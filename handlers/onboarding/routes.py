"""Welcomes and onboarding: a member who joins a group is greeted there by name; a new contact
is tagged by the channel code they came by and welcomed one-to-one; onboarding starts on a new
contact, a group join or a member's first one-to-one message (``[onboarding] start_on``),
unless the member already went through it."""
from __future__ import annotations

import handlers.onboarding.flow as flow
from bot import links
from bot.context import Context
from bot.middlewares import Next
from bot.router import Router
from bot.update import CONTACT_ADDED, MEMBER_JOINED
from handlers.onboarding.config import CHANNEL_CODES, ONBOARDING
from storage import flows as member_flows
from storage import tags as member_tags

router = Router("onboarding")


async def start_if_new(ctx: Context) -> bool:
    """Start onboarding for the sender unless they were ever in it; True if it started."""
    if not ctx.config[ONBOARDING].enabled or not ctx.flows.running(flow.NAME):
        return False
    if await member_flows.load(ctx.session, ctx.member.id, flow.NAME) is not None:
        return False
    await ctx.flows.start(ctx, flow.NAME, flow.start_data(ctx))
    return True


async def link_values(ctx: Context, key: str) -> dict[str, object]:
    """The links an operator put in the welcome ``key`` ({member_center:checkin}), with the
    campaign "welcome" and the group (none one-to-one)."""
    filled = await links.values(ctx.session, ctx.config, ctx.texts.template(key), source="welcome",
                                group_id=ctx.group.id if ctx.group else None, now=ctx.now)
    return links.for_texts(ctx.config, filled)


@router.event(MEMBER_JOINED)
async def welcome_to_group(ctx: Context) -> None:
    # A repeated join event for someone already in the group must not greet them twice.
    if not ctx.joined or ctx.update.chat is None:
        return
    group = (ctx.group.name if ctx.group else None) or ctx.texts("group_name_unknown")
    ctx.reply(ctx.texts("welcome_group", name=ctx.display_name, group=group,
                        **await link_values(ctx, "welcome_group")))
    if "member_joined" in ctx.config[ONBOARDING].start_on:
        await start_if_new(ctx)


@router.event(CONTACT_ADDED)
async def welcome_contact(ctx: Context) -> None:
    """Tag the new contact by the channel code they came by, then welcome them."""
    tags = ctx.config[CHANNEL_CODES].get(ctx.update.channel_code or "", [])
    if tags:
        await member_tags.add(ctx.session, ctx.member.id, tags, source="channel_code", now=ctx.now)
    ctx.welcome(ctx.texts("welcome_contact", name=ctx.display_name, **await link_values(ctx, "welcome_contact")))
    if "contact_added" in ctx.config[ONBOARDING].start_on:
        await start_if_new(ctx)


async def on_first_message(next_: Next, ctx: Context) -> None:
    """A middleware (installed when ``first_message`` is in ``start_on``): a member's very first
    one-to-one message starts onboarding (and is the greeting it answers)."""
    u = ctx.update
    if (u.is_private and u.event is None and not u.is_command and ctx.member.message_count == 1
            and await start_if_new(ctx)):
        return
    await next_(ctx)
