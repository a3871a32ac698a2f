"""Points redemption in chat: "兑换" lists the catalog, "兑换 <编号>" asks to confirm; operators
settle redemptions with ``/redemption`` (approve, reject, fulfil)."""
from __future__ import annotations

import re

from sqlalchemy import select

from bot import filters
from bot.context import Context
from bot.router import Router
from flows import redemption
from storage import audit, points, rewards
from storage.models import Member, Redemption, Reward

router = Router("redemption")
PICK = re.compile(r"^兑换\s*(\d{1,9})$")
PENDING_SHOWN = 20


def _conditions(ctx: Context, reward: Reward) -> str:
    notes = []
    if reward.min_level:
        notes.append(ctx.texts("redeem_note_level", level=reward.min_level))
    if reward.ends_at is not None:
        notes.append(ctx.texts("redeem_note_until", date=reward.ends_at.strftime("%m-%d %H:%M")))
    if reward.approval:
        notes.append(ctx.texts("redeem_note_approval"))
    return "（" + "，".join(notes) + "）" if notes else ""


@router.message(filters.Text("兑换"))
async def show_catalog(ctx: Context) -> None:
    catalog = await rewards.catalog(ctx.session, now=ctx.now)
    if not catalog:
        ctx.reply(ctx.texts("redeem_list_empty"))
        return
    lines = [ctx.texts("redeem_list_header", balance=await points.balance(ctx.session, ctx.member.id))]
    lines += [ctx.texts("redeem_list_line", id=r.id, name=r.name, cost=r.cost, stock=r.stock) + _conditions(ctx, r)
              for r in catalog]
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
        "level": reward.min_level or "", "balance": await points.balance(ctx.session, ctx.member.id),
    })


ACTIONS = ("approve", "reject", "fulfil")


@router.command("redemption", role="operator")
async def redemption_command(ctx: Context) -> None:
    """处理积分兑换：/redemption pending；/redemption approve|reject|fulfil <兑换单号>"""
    action, _, rest = ctx.args.strip().partition(" ")
    if action == "pending" or not action:
        rows = (await ctx.session.execute(
            select(Redemption.id, Redemption.status, Redemption.cost, Reward.name, Member.name.label("member"),
                   Member.external_id).join(Reward, Reward.id == Redemption.reward_id)
            .join(Member, Member.id == Redemption.member_id)
            .where(Redemption.status.in_((rewards.AWAITING_APPROVAL, rewards.RESERVED)))
            .order_by(Redemption.id).limit(PENDING_SHOWN))).all()
        lines = [ctx.texts("redemption_line", id=r.id, member=r.member or r.external_id, reward=r.name, cost=r.cost,
                           status=ctx.texts(f"redemption_{r.status}")) for r in rows]
        ctx.reply("\n".join(lines) if lines else ctx.texts("redemption_none"))
        return
    if action not in ACTIONS or not rest.strip().isdigit():
        ctx.reply(ctx.texts("command_bad_args", problem=ctx.texts("redemption_bad_args"),
                            usage=ctx.texts("redemption_usage")))
        return
    redemption_id = int(rest)
    if await settle(ctx, redemption_id, action) is None:
        ctx.reply(ctx.texts("redemption_refused", id=redemption_id))
        return
    ctx.reply(ctx.texts("redemption_settled", id=redemption_id, action=ctx.texts(f"redemption_action_{action}")))


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
    actor = f"{ctx.update.channel}:{ctx.update.sender}"
    await audit.record(ctx.session, actor=actor, action=f"redemption.{action}", result="ok" if done else "refused",
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
