"""Redemption: the member picked a reward ("兑换 3"), sees its cost and their balance, and
confirms with "确认" ("取消" leaves); the confirmation reserves points and one unit together
(``storage.rewards.redeem``). Unconfirmed for 10 minutes, it lapses."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.config import Config
from flows.engine import Flow, State
from flows.questions import answer
from storage import points, rewards

NAME = "redemption"
CONFIRM_WITHIN = timedelta(minutes=10)
OUTCOME_TEXTS = {"out_of_stock": "redeem_out_of_stock", "inactive": "redeem_out_of_stock", "unknown": "redeem_out_of_stock",
                 "limit": "redeem_limit", "level": "redeem_level", "not_yet": "redeem_window", "ended": "redeem_window"}


async def _redeem(event: Any) -> None:
    """On 确认: redeem, and leave the member's answer (success or why not) in ``outcome``."""
    conversation = event.model
    ctx, data = conversation.ctx, conversation.data
    levels = ctx.config.levels
    level = levels.tier(await points.lifetime(ctx.session, ctx.member.id))
    code = None
    try:
        done = await rewards.redeem(ctx.session, ctx.member.id, data["id"], key=f"{ctx.update.key}:redeem", now=ctx.now,
                                    level=level, levels=[t.name for t in levels.tiers])
    except points.NotEnoughPoints:
        key = "redeem_not_enough"
    except rewards.Unavailable as exc:
        key = OUTCOME_TEXTS[exc.reason]
    else:
        code = done.code
        key = ("redeem_awaiting" if done.status == rewards.AWAITING_APPROVAL else
               "redeem_code" if code else "redeem_done")
    balance = await points.balance(ctx.session, ctx.member.id)
    data["outcome"] = ctx.texts(key, **{**data, "balance": balance, "mine": level, "code": code or ""})


def build(config: Config) -> Flow:
    texts = config.texts
    return Flow(
        NAME, title="积分兑换",
        states=[State("confirm", prompt="confirm", deadline=CONFIRM_WITHIN, on_deadline="lapse"),
                State("done", prompt="done", final=True), State("lapsed", prompt="lapsed", final=True)],
        transitions=[
            {"trigger": "answer", "source": "confirm", "dest": "done",
             "conditions": [lambda event: answer(event) == "确认"], "after": [_redeem]},
            {"trigger": "lapse", "source": "confirm", "dest": "lapsed"},
        ],
        texts={"confirm": texts["redeem_confirm"], "done": "{outcome}", "lapsed": texts["redeem_expired"]},
    )
