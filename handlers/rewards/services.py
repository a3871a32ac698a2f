"""Redemptions for operators on every surface: the chat command, the console and the REST API
settle a redemption through ``settle``: the same rules, the same audit entry, the member told."""
from __future__ import annotations

from bot.context import Context
from storage import audit, rewards
from storage.models import Member, Redemption, Reward

__all__ = ["ACTIONS", "settle"]

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
