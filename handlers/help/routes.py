"""The member help (「帮助」/「菜单」, ``/help``): the keywords the features registered that work
in this chat, each with its description from the feature's own texts (a new feature appears by
itself), and the commands the sender may use; ``/help <命令>`` a command's usage. And the
fallback: a one-to-one message nothing else took gets the same menu. In groups the bot stays
quiet on unmatched lines: answering every one would be spam."""
from __future__ import annotations

import dataclasses

from bot import filters
from bot.context import Context
from bot.roles import has_role
from bot.router import Keyword, Router

router = Router("help")
MENU_WORDS = ("帮助", "菜单")


def keywords_here(ctx: Context) -> list[Keyword]:
    """The listed keywords that work where the sender is (a group or one-to-one), in routing order:
    each route is asked whether it would take its own keyword here."""
    found: list[Keyword] = []
    for route in ctx.dispatcher.keyword_routes:
        kw = route.keyword
        if (kw is not None and kw.about and kw not in found
                and route.matches(dataclasses.replace(ctx.update, text=kw.word, event=None))):
            found.append(kw)
    return found


def menu(ctx: Context) -> str:
    """The keywords, then the commands if the sender has any besides /help itself."""
    parts = []
    keywords = keywords_here(ctx)
    if keywords:
        parts.append("\n".join([ctx.texts("menu_header"),
                                *(ctx.texts("menu_line", keyword=k.word, about=ctx.texts(k.about)) for k in keywords)]))
    commands = ctx.dispatcher.commands_for(ctx.role)
    if any(cmd.name != "help" for cmd in commands) or not keywords:
        parts.append("\n".join([ctx.texts("help_header"), *(
            ctx.texts("help_line", command=cmd.name, description=cmd.description) for cmd in commands)]))
    parts.append(ctx.texts("menu_footer"))
    return "\n\n".join(parts)


@router.command("help", aliases=("帮助",))
async def help_command(ctx: Context) -> None:
    """查看你可以发送的关键词和命令；/help <命令> 查看命令的用法
    /help [命令]"""
    name = ctx.args.strip().lstrip("/").lower()
    if not name:
        ctx.reply(menu(ctx))
        return
    cmd = ctx.dispatcher.commands.get(name)
    if cmd is None:
        ctx.reply(ctx.texts("unknown_command", command=name[:32]))
        return
    if not has_role(ctx.role, cmd.role):
        # As running it says: the command exists and needs a role.
        ctx.reply(ctx.texts("command_refused", command=cmd.name, role=ctx.texts(f"role_min_{cmd.role}")))
        return
    ctx.reply(ctx.texts("help_command", command=cmd.name, description=cmd.description,
                        usage=cmd.usage or f"/{cmd.name}", role=ctx.texts(f"role_min_{cmd.role}")))


@router.message(filters.Text(*MENU_WORDS), keyword=Keyword(MENU_WORDS[0], ""))
async def menu_keyword(ctx: Context) -> None:
    # Asked for (not on every chat line): the sender's role is worth its read here.
    ctx.role = await ctx.dispatcher.role_of(ctx)
    ctx.reply(menu(ctx))


@router.fallback(filters.private)
async def fallback(ctx: Context) -> None:
    # The member's menu: reading the sender's role would cost every chat line a query;
    # an operator gets theirs with /help or 「菜单」.
    ctx.reply(ctx.texts("fallback", name=ctx.display_name, commands=menu(ctx)))
