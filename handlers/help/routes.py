"""``/help``: the commands the sender may use, each with its one-line description; and the
fallback: a one-to-one message nothing else took gets a friendly "here is what I can do". In
groups the bot stays quiet: answering every unmatched line would be spam."""
from __future__ import annotations

from bot import filters
from bot.context import Context
from bot.roles import has_role
from bot.router import Router

router = Router("help")


def command_list(ctx: Context) -> str:
    return "\n".join(
        ctx.texts("help_line", command=cmd.name, description=cmd.description)
        for cmd in ctx.dispatcher.commands_for(ctx.role)
    )


@router.command("help", aliases=("帮助",))
async def help_command(ctx: Context) -> None:
    """查看你可以使用的命令；/help <命令> 查看它的用法
    /help [命令]"""
    name = ctx.args.strip().lstrip("/").lower()
    if not name:
        ctx.reply(ctx.texts("help_header") + "\n" + command_list(ctx))
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


@router.fallback(filters.private)
async def fallback(ctx: Context) -> None:
    # The member's commands: reading the sender's role would cost every chat line a query;
    # an operator gets theirs with /help.
    ctx.reply(ctx.texts("fallback", name=ctx.display_name, commands=command_list(ctx)))
