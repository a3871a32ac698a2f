"""Points redemption in chat: "兑换" lists the catalog, "兑换 <编号>" asks to confirm."""
from __future__ import annotations

import re

from bot import filters
from bot.context import Context
from bot.router import Router
from flows import redemption
from storage import points, rewards

router = Router("redemption")
PICK = re.compile(r"^兑换\s*(\d{1,9})$")


@router.message(filters.Text("兑换"))
async def show_catalog(ctx: Context) -> None:
    catalog = await rewards.catalog(ctx.session)
    if not catalog:
        ctx.reply(ctx.texts("redeem_list_empty"))
        return
    lines = [ctx.texts("redeem_list_header", balance=await points.balance(ctx.session, ctx.member.id))]
    lines += [ctx.texts("redeem_list_line", id=r.id, name=r.name, cost=r.cost, stock=r.stock) for r in catalog]
    ctx.reply("\n".join([*lines, ctx.texts("redeem_list_footer")]))


@router.message(filters.Regex(PICK))
async def pick(ctx: Context) -> None:
    match = PICK.match((ctx.update.text or "").strip())
    assert match is not None
    reward = await rewards.get(ctx.session, int(match.group(1)))
    if reward is None or not reward.active:
        ctx.reply(ctx.texts("redeem_unknown", id=match.group(1)))
        return
    assert ctx.dispatcher.flows is not None
    await ctx.dispatcher.flows.start(ctx, redemption.NAME, {
        "id": reward.id, "name": reward.name, "cost": reward.cost, "limit": reward.per_member_limit,
        "balance": await points.balance(ctx.session, ctx.member.id),
    })
