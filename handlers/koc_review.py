"""Operators' KOC review: the pending applications, approve with a type, reject with a
reason, invite a member to screening (``flows.koc_screening.decide`` tells and tags them)."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.context import Context
from bot.router import Router
from flows import koc_screening
from handlers.commandline import UsageError, find_member, parse
from storage import koc
from storage.models import Member

router = Router("koc_review")
SHOWN = 20


@router.command("koc", role="viewer")
async def koc_command(ctx: Context) -> None:
    """KOC 审核：待审核列表、通过、拒绝、邀请筛选（通过、拒绝、邀请需要运营）
    /koc pending
    /koc approve <用户> [分享官|内容官|体验官|带货官]
    /koc reject <用户> <原因>
    /koc invite <用户>"""
    from bot.roles import has_role

    args = parse(ctx.args)
    action = args.choice(0, "动作", ("pending", "approve", "reject", "invite"))
    if action == "pending":
        zone = ZoneInfo(ctx.config.checkin.timezone)
        waiting = await koc.pending(ctx.session, limit=SHOWN)
        lines = []
        for a in waiting:
            member = await ctx.session.get(Member, a.member_id)
            lines.append(ctx.texts("koc_pending_line", who=(member.name or member.external_id) if member else a.member_id,
                                   external_id=member.external_id if member else "—", score=a.score,
                                   type=a.recommended_type, at=a.created_at.astimezone(zone).strftime("%m-%d %H:%M")))
        ctx.reply("\n".join(lines) or ctx.texts("koc_pending_none"))
        return
    if not has_role(ctx.role, "operator"):
        ctx.reply(ctx.texts("command_refused", command=f"koc {action}", role=ctx.texts("role_operator")))
        return
    member = await find_member(ctx, args.word(1, "用户"))
    who = member.name or member.external_id
    if action == "invite":
        assert ctx.dispatcher.flows is not None
        if await koc.pending_of(ctx.session, member.id) is not None:
            raise UsageError(f"{who} 已有待审核的申请")
        await ctx.dispatcher.flows.start_for(ctx, member.id, member.external_id, koc_screening.NAME, channel=member.channel)
        ctx.reply(ctx.texts("koc_invited", who=who))
        return
    application = await koc.pending_of(ctx.session, member.id)
    if application is None:
        raise UsageError(f"{who} 没有待审核的 KOC 申请")
    if action == "approve":
        role = args.choice(2, "类型", koc_screening.TYPES) if len(args.words) > 2 else None
        decided = await koc_screening.decide(ctx, application.id, approve=True, role=role)
    else:
        decided = await koc_screening.decide(ctx, application.id, approve=False, reason=args.rest(2, "原因")[:200])
    assert decided is not None
    ctx.reply(ctx.texts("koc_decided", who=who, decision=ctx.texts(f"koc_decision_{decided.status}"),
                        type=decided.approved_type or "—"))
