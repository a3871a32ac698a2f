"""Redemption: the member picked a reward ("兑换 3"), sees its cost and their balance, and
confirms with "确认" ("取消" leaves, and so does another command: 「兑换 2」 then replaces the
choice); the confirmation reserves points and one unit together. Unconfirmed for 10 minutes,
it lapses. A pick certain to fail is refused before it is asked.

The confirmations of one batch are redeemed together after its handlers
(``storage.reservations``): a rush on one reward is a few statements, and each member is told
in the same transaction whether they got it."""
from __future__ import annotations

from typing import Any

from bot.config import Config
from bot.context import Context
from flows.confirm import confirmation
from flows.engine import Conversation, Flow
from handlers.levels.services import levels_of
from storage import points, reservations, rewards
from storage.campaigns import CHAT, PAGE

NAME = "redemption"
ASKED = "redemption_asked"  # ctx.data key: the pick being confirmed
OUTCOME_TEXTS = {"out_of_stock": "redeem_out_of_stock", "inactive": "redeem_out_of_stock",
                 "unknown": "redeem_out_of_stock", reservations.NOT_ENOUGH: "redeem_not_enough",
                 "limit": "redeem_limit", "level": "redeem_level", "not_yet": "redeem_window", "ended": "redeem_window"}
# Refused when picked, before 确认 is asked: nothing was "just" taken, the reward is gone.
REFUSED_TEXTS = {**OUTCOME_TEXTS, "out_of_stock": "redeem_sold_out", "not_enough": "redeem_not_enough"}


async def redeem(conversation: Conversation) -> None:
    """On 确认: redeem with the batch's other confirmations; the answer comes from there."""
    conversation.ctx.data[ASKED] = conversation.data
    await conversation.ctx.defer(redeem_batch)


async def redeem_batch(ctxs: list[Context]) -> None:
    """Redeem the batch's confirmations at once; each member's answer says it worked or why not."""
    ctx = ctxs[0]
    levels = levels_of(ctx.config)
    standing = await reservations.standing(ctx.session, [c.member.id for c in ctxs])
    tiers = [levels.tier(standing.get(c.member.id, (0, 0))[1]) for c in ctxs]
    asks = [reservations.Ask(c.member.id, c.data[ASKED]["id"], f"{c.update.key}:redeem", level, tuple(levels.names),
                             via=PAGE if c.update.page else CHAT)
            for c, level in zip(ctxs, tiers, strict=True)]
    outcomes = await reservations.redeem_many(ctx.session, asks, now=ctx.now,
                                              balances={m: b for m, (b, _) in standing.items()})
    for c, level, outcome in zip(ctxs, tiers, outcomes, strict=True):
        done, code = outcome.redemption, None
        if outcome.refused is not None or done is None:
            key = OUTCOME_TEXTS[outcome.refused or "unknown"]
        else:
            code = done.code
            key = ("redeem_awaiting" if done.status == rewards.AWAITING_APPROVAL else
                   "redeem_code" if code else "redeem_done")
        c.reply(c.texts(key, **{**c.data[ASKED], "balance": outcome.balance, "mine": level, "code": code or ""}))


async def confirmed(ctx: Context, data: dict[str, Any]) -> str:
    """Redeem the reward ``data`` names (as ``pick`` made it) for the member of ``ctx`` at once,
    one member alone: the member center's confirm form."""
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
