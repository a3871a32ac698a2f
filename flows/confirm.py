"""A confirmation: the member sees what will happen and answers "确认" within 10 minutes;
"取消"/"退出" leave (the engine's exit words) and silence lets it lapse. Redemptions and
operators' broadcasts ask this way.

    flow = confirmation("redemption", title="积分兑换", prompt=texts["redeem_confirm"],
                        lapsed=texts["redeem_expired"], on_confirm=redeem)

``on_confirm(conversation)`` runs inside the confirming update's transaction and returns the
answer the member gets.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from flows.engine import Conversation, Flow, State
from flows.questions import answer

CONFIRM_WORD = "确认"
CONFIRM_WITHIN = timedelta(minutes=10)

OnConfirm = Callable[[Conversation], Awaitable[str]]


def confirmation(name: str, *, title: str, prompt: str, lapsed: str, on_confirm: OnConfirm,
                 within: timedelta = CONFIRM_WITHIN) -> Flow:
    """A flow that waits for "确认" in its ``confirm`` state and then answers what ``on_confirm``
    returns; ``prompt`` and ``lapsed`` are templates over the data the flow was started with."""

    async def confirmed(event: Any) -> None:
        conversation: Conversation = event.model
        conversation.data["outcome"] = await on_confirm(conversation)

    return Flow(
        name, title=title,
        states=[State("confirm", prompt="confirm", deadline=within, on_deadline="lapse"),
                State("done", prompt="done", final=True), State("lapsed", prompt="lapsed", final=True)],
        transitions=[
            {"trigger": "answer", "source": "confirm", "dest": "done",
             "conditions": [lambda event: answer(event) == CONFIRM_WORD], "after": [confirmed]},
            {"trigger": "lapse", "source": "confirm", "dest": "lapsed"},
        ],
        texts={"confirm": prompt, "done": "{outcome}", "lapsed": lapsed},
    )
