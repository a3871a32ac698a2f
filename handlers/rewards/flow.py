"""Redemption: the member picked a reward ("兑换 3"), sees its cost and their balance, and
confirms with "确认" ("取消" leaves, and so does another command: 「兑换 2」 then replaces the
choice); the confirmation reserves points and one unit together (``storage.rewards.redeem``).
Unconfirmed for 10 minutes, it lapses. A pick certain to fail is refused before it is asked."""
from __future__ import annotations

from typing import Any

from bot.config import Config
from bot.context import Context
from flows.confirm import confirmation
from flows.engine import Conversation, Flow
from handlers.levels.services import levels_of
from storage import points, rewards
from storage.campaigns import CHAT, PAGE

NAME = "redemption"
OUTCOME_TEXTS = {"out_of_stock": "redeem_out_of_stock", "inactive": "redeem_out_of_stock",
                 "unknown": "redeem_out_of_stock",
                 "limit": "redeem_limit", "level": "redeem_level", "not_yet": "redeem_window", "ended": "redeem_window"}
# Refused when picked, before 确认 is asked: nothing was "just" taken, the reward is gone.
REFUSED_TEXTS = {**OUTCOME_TEXTS, "out_of_stock": "redeem_sold_out", "not_enough": "redeem_not_enough"}


async def redeem(conversation: Conversation) -> str:
    """On 确认: redeem; the member's answer says it worked or why not."""
    return await confirmed(conversation.ctx, conversation.data)


async def confirmed(ctx: Context, data: dict[str, Any]) -> str:
    """Redeem the reward ``data`` names (as ``pick`` made it) for the member of ``ctx``: from
    chat's 确认 and from the member center's confirm form alike."""
    levels = levels_of(ctx.config)
    level = levels.tier(await points.lifetime(ctx.session, ctx.member.id))
    code = None
    try:
        done = await rewards.redeem(ctx.session, ctx.member.id, data["id"], key=f"{ctx.update.key}:redeem", now=ctx.now,
                                    level=level, levels=levels.names, via=PAGE if ctx.update.page else CHAT)
    except points.NotEnoughPoints:
        key = "redeem_not_enough"
    except rewards.Unavailable as exc:
        key = OUTCOME_TEXTS[exc.reason]
    else:
        code = done.code
        key = ("redeem_awaiting" if done.status == rewards.AWAITING_APPROVAL else
               "redeem_code" if code else "redeem_done")
    balance = await points.balance(ctx.session, ctx.member.id)
    return ctx.texts(key, **{**data, "balance": balance, "mine": level, "code": code or ""})


def build(config: Config) -> Flow:
    return confirmation(NAME, title="积分兑换", prompt=config.texts["redeem_confirm"],
                        lapsed=config.texts["redeem_expired"], left=config.texts["redeem_left"], on_confirm=redeem)
