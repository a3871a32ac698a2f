"""KOC screening for other features and surfaces: the four types, starting a screening, and an
operator's decision (the chat command, the console and the REST API all decide through here)."""
from __future__ import annotations

from typing import Literal

from bot.context import Context
from handlers.lifecycle.services import recompute
from storage import audit, community, koc
from storage import tags as member_tags
from storage.models import KocApplication, Member

__all__ = ["TYPES", "KocType", "decide", "invite", "start_screening"]

NAME = "koc_screening"  # the screening flow
SHARER, CREATOR, TESTER, SELLER = "分享官", "内容官", "体验官", "带货官"
TYPES = (SHARER, CREATOR, TESTER, SELLER)
KocType = Literal["分享官", "内容官", "体验官", "带货官"]


async def start_screening(ctx: Context) -> None:
    """Start a screening for the sender, unless an application of theirs waits for review."""
    if await koc.pending_of(ctx.session, ctx.member.id) is not None:
        ctx.send(ctx.texts("koc_pending"), to=ctx.update.sender)
        return
    await ctx.flows.start(ctx, NAME)


async def invite(ctx: Context, member: Member) -> bool:
    """An operator invites ``member`` to a screening (the first question goes to them on their
    channel); False if an application of theirs already waits for review. Audited."""
    waiting = await koc.pending_of(ctx.session, member.id) is not None
    await audit.record(ctx.session, actor=ctx.actor, action="koc.invite",
                       result="refused" if waiting else "ok", now=ctx.now, args={"member": member.external_id})
    if waiting:
        return False
    await ctx.flows.start_for(ctx, member.id, member.external_id, NAME, channel=member.channel)
    return True


async def decide(ctx: Context, application_id: int, *, approve: bool, role: str | None = None,
                 reason: str | None = None) -> KocApplication | None:
    """An operator approves (as ``role``, default the recommended type) or rejects (with a
    ``reason``) a pending application: the member is told, tagged, and it is audited.
    None if the application is not pending."""
    if role is not None and role not in TYPES:
        raise ValueError(f"unknown KOC type {role!r}; one of {', '.join(TYPES)}")
    actor = ctx.actor
    current = await ctx.session.get(KocApplication, application_id)
    chosen = role or (current.recommended_type if current else None)
    decided = await koc.decide(ctx.session, application_id, approve=approve, decided_by=actor, now=ctx.now,
                               approved_type=chosen, reason=reason)
    await audit.record(ctx.session, actor=actor, action="koc.approve" if approve else "koc.reject",
                       result="ok" if decided else "refused", now=ctx.now,
                       args={"application": application_id, "type": chosen, "reason": reason})
    if decided is None:
        return None
    member = await ctx.session.get(Member, decided.member_id)
    assert member is not None
    if approve:
        await member_tags.add(ctx.session, member.id, [f"KOC:{chosen}"], source="koc", now=ctx.now)
        await community.set_attributes(ctx.session, member.id, {"koc_type": chosen})
        await recompute(ctx, member.id)  # an approved KOC is a 超级用户 from now, not in 10 minutes
        ctx.send(ctx.texts("koc_approved", type=chosen), to=member.external_id, channel=member.channel)
    else:
        ctx.send(ctx.texts("koc_rejected", reason=reason or "—"), to=member.external_id, channel=member.channel)
    return decided
