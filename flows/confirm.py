"""A confirmation: the member sees what will happen and answers "确认" within 10 minutes;
"取消"/"退出" leave (the engine's exit words) and silence lets it lapse. Redemptions and
operators' broadcasts ask this way.

    flow = confirmation("redemption", title="积分兑换", prompt=texts["redeem_confirm"],
                        lapsed=texts["redeem_expired"], left=texts["redeem_left"], on_confirm=redeem)

``on_confirm(conversation)`` runs inside the confirming update's transaction and returns the
answer the member gets, or None when it answers later itself (a redemption is decided with the
others of its batch: ``Context.defer``).

A confirmation never traps the member: a message that is clearly another command (a
slash-command the bot has, or a keyword a feature registered: ``Dispatcher.recognizes``) leaves
it, with ``left`` said, and is then handled as usual; so 「兑换 2」 while 「兑换 4」 waits
replaces the choice, and 「积分」 answers the balance. Anything else gets the question again.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flows.engine import Conversation, Flow, State
from flows.questions import answer

if TYPE_CHECKING:
    from bot.context import Context

CONFIRM_WORD = "确认"
CONFIRM_WITHIN = timedelta(minutes=10)

OnConfirm = Callable[[Conversation], Awaitable[str | None]]


def another_command(ctx: Context) -> bool:
    """The message is clearly another command, as the router knows it (never "确认" itself)."""
    return (ctx.update.text or "").strip() != CONFIRM_WORD and ctx.dispatcher.recognizes(ctx.update)


def confirmation(name: str, *, title: str, prompt: str, lapsed: str, on_confirm: OnConfirm,
                 within: timedelta = CONFIRM_WITHIN, left: str | None = None) -> Flow:
    """A flow that waits for "确认" in its ``confirm`` state and then answers what ``on_confirm``
    returns (if anything); ``prompt``, ``lapsed`` and ``left`` (said when another command leaves
    it; default the kernel's ``flow_left``) are templates over the data the flow was started with."""

    async def confirmed(event: Any) -> None:
        conversation: Conversation = event.model
        outcome = await on_confirm(conversation)
        if outcome is not None:
            conversation.ctx.reply(outcome)

    texts = {"confirm": prompt, "lapsed": lapsed}
    if left is not None:
        texts["left"] = left
    return Flow(
        name, title=title,
        states=[State("confirm", prompt="confirm", deadline=within, on_deadline="lapse"),
                State("done", final=True), State("lapsed", prompt="lapsed", final=True)],
        transitions=[
            {"trigger": "answer", "source": "confirm", "dest": "done",
             "conditions": [lambda event: answer(event) == CONFIRM_WORD], "after": [confirmed]},
            {"trigger": "lapse", "source": "confirm", "dest": "lapsed"},
        ],
        texts=texts, steps_aside=another_command, left="left" if left is not None else None,
    )
