"""Welcomes: a member who joins a group is greeted there by name; a new contact one-to-one."""
from __future__ import annotations

from bot.context import Context
from bot.router import Router
from bot.update import CONTACT_ADDED, MEMBER_JOINED
from handlers.onboarding import start_if_new
from storage import tags as member_tags

router = Router("welcome")


@router.event(MEMBER_JOINED)
async def welcome_to_group(ctx: Context) -> None:
    # A repeated join event for someone already in the group must not greet them twice.
    if not ctx.joined or ctx.update.chat is None:
        return
    group = (ctx.group.name if ctx.group else None) or ctx.texts("group_name_unknown")
    ctx.reply(ctx.texts("welcome_group", name=ctx.display_name, group=group))
    if "member_joined" in ctx.config.onboarding.start_on:
        await start_if_new(ctx)


@router.event(CONTACT_ADDED)
async def welcome_contact(ctx: Context) -> None:
    """Tag the new contact by the channel code they came by, then welcome them."""
    tags = ctx.config.channel_codes.get(ctx.update.state or "", [])
    if tags:
        await member_tags.add(ctx.session, ctx.member.id, tags, source="channel_code", now=ctx.now)
    ctx.welcome(ctx.texts("welcome_contact", name=ctx.display_name))
    if "contact_added" in ctx.config.onboarding.start_on:
        await start_if_new(ctx)
