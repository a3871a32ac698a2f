"""Redemptions on every surface: operators (the chat command, the console, the REST API) settle
one through ``settle``: the same rules, the same audit entry, the member told; a member redeems
from chat (兑换 N, 确认) or from the member center (``refusal``, ``redeem``) by the same rules."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

import handlers.rewards.flow as flow
from bot.config import Config
from bot.context import Context
from handlers.levels.services import levels_of
from storage import audit, points, rewards
from storage.models import Member, Redemption, Reward

__all__ = ["ACTIONS", "REFUSED_TEXTS", "data_of", "redeem", "refusal", "refusals", "settle"]

REFUSED_TEXTS = flow.REFUSED_TEXTS  # a refusal's reason: the text key chat answers it with

ACTIONS = ("approve", "reject", "fulfil")


async def settle(ctx: Context, redemption_id: int, action: str) -> Redemption | None:
    """An operator approves, fulfils or rejects (cancels, refunding) a redemption: audited, and
    the member told on their channel. None if it does not exist or is not in a state for it."""
    row = await ctx.session.get(Redemption, redemption_id)
    if action == "approve":
        done = await rewards.approve(ctx.session, redemption_id)
    elif action == "fulfil":
        done = await rewards.fulfil(ctx.session, redemption_id, now=ctx.now)
    else:
        done = await rewards.cancel(ctx.session, redemption_id, now=ctx.now)
    await audit.record(ctx.session, actor=ctx.actor, action=f"redemption.{action}", result="ok" if done else "refused",
                       now=ctx.now, args={"redemption": redemption_id})
    if not done or row is None:
        return None
    reward = await ctx.session.get(Reward, row.reward_id)
    member = await ctx.session.get(Member, row.member_id)
    assert reward is not None and member is not None
    ctx.send(ctx.texts(f"redemption_member_{action}", name=reward.name, cost=row.cost),
             to=member.external_id, channel=member.channel)
    await ctx.session.refresh(row)
    return row


def data_of(reward: Reward, balance: int) -> dict[str, Any]:
    """What the redemption texts say of ``reward`` (and the member's ``balance``)."""
    return {"id": reward.id, "name": reward.name, "cost": reward.cost, "limit": reward.per_member_limit,
            "level": reward.min_level or "", "balance": balance}


async def refusal(session: AsyncSession, config: Config, member_id: int, reward: Reward, *,
                  now: datetime) -> tuple[str | None, str | None]:
    """Why the member cannot redeem ``reward`` now, as 「兑换 N」 refuses it at once (a reason of
    ``rewards.Unavailable`` or not_enough; None: it can be tried), and the member's tier."""
    return (await refusals(session, config, member_id, [reward], now=now))[0]


async def refusals(session: AsyncSession, config: Config, member_id: int, shown: Sequence[Reward], *,
                   now: datetime) -> list[tuple[str | None, str | None]]:
    """``refusal`` of each of ``shown`` (a catalog page): the member's points and tier read once."""
    levels = levels_of(config)
    level = levels.tier(await points.lifetime(session, member_id))
    balance = await points.balance(session, member_id)
    found: list[tuple[str | None, str | None]] = []
    for reward in shown:
        reason = await rewards.refusal(session, member_id, reward, now=now, level=level, levels=levels.names)
        if reason is None and balance < reward.cost:
            reason = "not_enough"
        found.append((reason, level))
    return found


async def redeem(ctx: Context, reward_id: int) -> None:
    """The member confirmed ``reward_id`` on a page: the same redemption as 确认 in chat (points
    and a unit reserved together, or neither); the answer is ``ctx.reply``'d."""
    reward = await rewards.get(ctx.session, reward_id)
    if reward is None:
        ctx.reply(ctx.texts("redeem_unknown", id=reward_id))
        return
    ctx.reply(await flow.confirmed(ctx, data_of(reward, await points.balance(ctx.session, ctx.member.id))))
