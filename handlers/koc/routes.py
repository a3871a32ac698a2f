"""Starting a screening (the member sends ``[koc] keyword`` one-to-one, or is invited once
active) and the operators' review: ``/koc pending|approve|reject|invite``."""
from __future__ import annotations

from bot import filters
from bot.commandline import UsageError, find_member, parse
from bot.config import Config
from bot.context import Context
from bot.middlewares import Next
from bot.roles import has_role
from bot.router import Keyword, Router
from handlers.koc.config import KOC
from handlers.koc.services import NAME, TYPES, decide, start_screening
from storage import flows as member_flows
from storage import koc
from storage.models import Member

SHOWN = 20


def router(config: Config) -> Router:
    """The keyword while screening is on; the review always (applications made stay decidable)."""
    r = Router("koc")
    if config[KOC].enabled:

        @r.message(filters.Text(config[KOC].keyword), filters.private,
                   keyword=Keyword(config[KOC].keyword, "koc_about"))
        async def apply(ctx: Context) -> None:
            await start_screening(ctx)

    r.command("koc", role="viewer")(koc_command)
    return r


async def koc_command(ctx: Context) -> None:
    """KOC 审核：待审核列表、通过、拒绝、邀请筛选（通过、拒绝、邀请需要运营）
    /koc pending
    /koc approve <用户> [分享官|内容官|体验官|带货官]
    /koc reject <用户> <原因>
    /koc invite <用户>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("pending", "approve", "reject", "invite"))
    if action == "pending":
        waiting = await koc.pending(ctx.session, limit=SHOWN)
        lines = []
        for a in waiting:
            member = await ctx.session.get(Member, a.member_id)
            who = (member.name or member.external_id) if member else a.member_id
            lines.append(ctx.texts("koc_pending_line", who=who, external_id=member.external_id if member else "—",
                                   score=a.score, type=a.recommended_type,
                                   at=a.created_at.astimezone(ctx.zone).strftime("%m-%d %H:%M")))
        ctx.reply("\n".join(lines) or ctx.texts("koc_pending_none"))
        return
    if not has_role(ctx.role, "operator"):
        ctx.reply(ctx.texts("command_refused", command=f"koc {action}", role=ctx.texts("role_min_operator")))
        return
    member = await find_member(ctx, args.word(1, "用户"))
    who = member.name or member.external_id
    if action == "invite":
        if await koc.pending_of(ctx.session, member.id) is not None:
            raise UsageError(f"{who} 已有待审核的申请")
        await ctx.flows.start_for(ctx, member.id, member.external_id, NAME, channel=member.channel)
        ctx.reply(ctx.texts("koc_invited", who=who))
        return
    application = await koc.pending_of(ctx.session, member.id)
    if application is None:
        raise UsageError(f"{who} 没有待审核的 KOC 申请")
    if action == "approve":
        role = args.choice(2, "类型", TYPES) if len(args.words) > 2 else None
        decided = await decide(ctx, application.id, approve=True, role=role)
    else:
        decided = await decide(ctx, application.id, approve=False, reason=args.rest(2, "原因")[:200])
    assert decided is not None
    ctx.reply(ctx.texts("koc_decided", who=who, decision=ctx.texts(f"koc_decision_{decided.status}"),
                        type=decided.approved_type or "—"))


async def invite_the_active(next_: Next, ctx: Context) -> None:
    """A middleware: when a member's messages reach the threshold, invite them once (after the
    message was handled, so the message itself is not taken as an answer)."""
    await next_(ctx)
    threshold = ctx.config[KOC].activity_threshold
    if (threshold and ctx.update.event is None and ctx.member.message_count == threshold
            and await member_flows.load(ctx.session, ctx.member.id, NAME) is None):
        await start_screening(ctx)
