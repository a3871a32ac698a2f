"""「积分」: the balance, points still pending, the latest entries and what expires soon; and the
operators' ``/points grant|deduct``, entered in the ledger with the operator as issuer."""
from __future__ import annotations

from datetime import timedelta

from bot import filters
from bot.commandline import UsageError, find_member, parse
from bot.context import Context
from bot.router import Keyword, Router
from storage import points

router = Router("points")
RECENT = 5
EXPIRY_WARNING = timedelta(days=30)
MAX_POINTS = 1_000_000


@router.message(filters.Text("积分", "我的积分"), keyword=Keyword("积分", "points_about"))
async def show_points(ctx: Context) -> None:
    member = ctx.member.id
    balance, waiting = await points.balance(ctx.session, member), await points.pending(ctx.session, member)
    entries = await points.recent(ctx.session, member, RECENT)
    lines = [ctx.texts("points_header", balance=balance)]
    if waiting:
        lines.append(ctx.texts("points_pending", pending=waiting))
    if entries:
        lines.append(ctx.texts("points_recent"))
        lines += [ctx.texts("points_entry", date=e.created_at.astimezone(ctx.zone).strftime("%m-%d"), reason=e.reason,
                            delta=f"{e.delta:+d}") for e in entries]
    else:
        lines.append(ctx.texts("points_none"))
    soon, first = await points.expiring(ctx.session, member, before=ctx.now + EXPIRY_WARNING)
    if soon and first is not None:
        lines.append(ctx.texts("points_expiring", points=soon, date=first.astimezone(ctx.zone).strftime("%Y-%m-%d")))
    ctx.reply("\n".join(lines))


@router.command("points", role="operator")
async def points_command(ctx: Context) -> None:
    """发放或扣除积分（记入积分流水，发放人是你）
    /points grant <用户> <数量> <原因>
    /points deduct <用户> <数量> <原因>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("grant", "deduct"))
    member = await find_member(ctx, args.word(1, "用户"))
    if (member.channel, member.external_id) == (ctx.update.channel, ctx.update.sender):
        raise UsageError("不能给自己加减积分")  # as nobody changes their own role
    amount = args.number(2, "数量", low=1, high=MAX_POINTS)
    reason = args.rest(3, "原因")[:200]
    key = f"operator:{ctx.update.key}"
    if action == "grant":
        posted = await points.credit(ctx.session, member.id, amount, key=key, reason=reason, now=ctx.now,
                                     issuer=ctx.actor, kind=points.GRANT)
    else:
        try:
            posted = await points.spend(ctx.session, member.id, amount, key=key, reason=reason, now=ctx.now,
                                        issuer=ctx.actor, kind=points.DEDUCT)
        except points.NotEnoughPoints:
            balance = await points.balance(ctx.session, member.id)
            raise UsageError(f"{member.name or member.external_id} 只有 {balance} 积分") from None
    who = member.name or member.external_id
    ctx.reply(ctx.texts(f"points_{action}ed", who=who, amount=amount, balance=posted.balance))
    ctx.send(ctx.texts(f"points_{action}ed_member", amount=amount, reason=reason, balance=posted.balance),
             to=member.external_id, channel=member.channel)
