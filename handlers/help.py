"""``/help``: the commands the sender may use, each with its one-line description."""
from __future__ import annotations

from bot.context import Context
from bot.router import Router

router = Router("help")


def command_list(ctx: Context) -> str:
    return "\n".join(
        ctx.texts("help_line", command=cmd.name, description=cmd.description)
        for cmd in ctx.dispatcher.commands_for(ctx.role)
    )


@router.command("help", aliases=("帮助",))
async def help_command(ctx: Context) -> None:
    """查看你可以使用的命令"""
    ctx.reply(ctx.texts("help_header") + "\n" + command_list(ctx))
