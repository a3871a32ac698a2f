"""The built-in inner middlewares: dedup and membership, plus the command audit helper."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.context import Context
from bot.router import Command
from bot.update import CONTACT_ADDED, MEMBER_JOINED, MEMBER_LEFT
from storage import audit, community, inbox

Next = Callable[[Context], Awaitable[None]]
Middleware = Callable[[Next, Context], Awaitable[None]]


async def dedup(next_: Next, ctx: Context) -> None:
    """A repeat of an update already handled stops here (a platform retry, a double click)."""
    u = ctx.update
    if await inbox.begin_handling(ctx.session, u.key, u.channel, now=ctx.now):
        await next_(ctx)
    else:
        ctx.data["duplicate"] = True


async def membership(next_: Next, ctx: Context) -> None:
    """Keep members, groups and who-is-in-which-group true, with activity counters."""
    u, s, now = ctx.update, ctx.session, ctx.now
    spoke = u.text is not None and u.event is None
    ctx._member = await community.touch_member(
        s, u.channel, u.sender, now=now, name=u.sender_name, spoke=spoke,
        source_state=u.state if u.event == CONTACT_ADDED else None,
    )
    if u.chat is not None:
        ctx._group = await community.touch_group(s, u.channel, u.chat, now=now, name=u.chat_name, spoke=spoke)
        if spoke:
            await community.record_spoke(s, ctx._group.id, ctx._member.id, now=now)
        elif u.event == MEMBER_JOINED:
            ctx.joined = await community.record_join(s, ctx._group.id, ctx._member.id, now=now)
        elif u.event == MEMBER_LEFT:
            await community.record_leave(s, ctx._group.id, ctx._member.id, now=now)
    await next_(ctx)


async def audit_command(ctx: Context, cmd: Command, result: str) -> None:
    u = ctx.update
    await audit.record(
        ctx.session, actor=f"{u.channel}:{u.sender}", action=f"/{cmd.name}", result=result, now=ctx.now,
        args={"args": ctx.args, "chat": u.chat, "role": ctx.role},
    )
