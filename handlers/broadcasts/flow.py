"""Confirming an operator's broadcast: ``/broadcast`` shows how many groups and a preview and
waits for "确认" (10 minutes); the confirmation plans the fan-out in the same transaction."""
from __future__ import annotations

from bot.config import Config
from flows.confirm import confirmation
from flows.engine import Conversation, Flow
from handlers.broadcasts.planner import plan
from storage import broadcasts

NAME = "broadcast_confirm"


async def go(conversation: Conversation) -> str:
    ctx, data = conversation.ctx, conversation.data
    if not await broadcasts.confirm(ctx.session, data["id"], now=ctx.now):
        return ctx.texts("broadcast_gone", id=data["id"])
    planned = await plan(ctx.session, ctx.config, ctx.texts, data["id"], now=ctx.now)
    return ctx.texts("broadcast_started", id=data["id"], groups=planned.groups, queued=planned.queued,
                     waiting=planned.waiting, skipped=sum(planned.skipped.values()))


def build(config: Config) -> Flow:
    return confirmation(NAME, title="群发确认", prompt=config.texts["broadcast_preview"],
                        lapsed=config.texts["broadcast_lapsed"], left=config.texts["broadcast_left"], on_confirm=go)
