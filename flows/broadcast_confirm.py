"""Confirming an operator's broadcast: ``/broadcast`` shows how many groups and a preview and
waits for "确认" (10 minutes); the confirmation plans the fan-out in the same transaction."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.config import Config
from flows.engine import Flow, State
from flows.questions import answer

NAME = "broadcast_confirm"
CONFIRM_WITHIN = timedelta(minutes=10)


async def _go(event: Any) -> None:
    from handlers import fanout
    from storage import broadcasts

    conversation = event.model
    ctx, data = conversation.ctx, conversation.data
    if not await broadcasts.confirm(ctx.session, data["id"], now=ctx.now):
        data["outcome"] = ctx.texts("broadcast_gone", id=data["id"])
        return
    planned = await fanout.plan(ctx.session, ctx.config, ctx.texts, data["id"], now=ctx.now)
    data["outcome"] = ctx.texts("broadcast_started", id=data["id"], groups=planned.groups, queued=planned.queued,
                                waiting=planned.waiting, skipped=sum(planned.skipped.values()))


def build(config: Config) -> Flow:
    texts = config.texts
    return Flow(
        NAME, title="群发确认",
        states=[State("confirm", prompt="confirm", deadline=CONFIRM_WITHIN, on_deadline="lapse"),
                State("done", prompt="done", final=True), State("lapsed", prompt="lapsed", final=True)],
        transitions=[
            {"trigger": "answer", "source": "confirm", "dest": "done",
             "conditions": [lambda event: answer(event) == "确认"], "after": [_go]},
            {"trigger": "lapse", "source": "confirm", "dest": "lapsed"},
        ],
        texts={"confirm": texts["broadcast_preview"], "done": "{outcome}", "lapsed": texts["broadcast_lapsed"]},
    )
