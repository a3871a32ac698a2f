"""The built-in stages every update passes, and the middleware types.

``dedup`` and ``membership`` run first, inside the transaction, over the whole batch of updates
being committed together (one multi-row statement per table, not one per update: this is what
lets SQLite keep up, DESIGN §9). Middlewares registered by users then wrap each update's routing.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.router import Command
from bot.update import CONTACT_ADDED, CONTACT_LOST, MEMBER_JOINED, MEMBER_LEFT, Update
from storage import audit, community, inbox, membership_batch, relationships
from storage.community import Sighting

Next = Callable[[Context], Awaitable[None]]
Middleware = Callable[[Next, Context], Awaitable[None]]


async def dedup(session: AsyncSession, ctxs: Sequence[Context]) -> None:
    """A repeat of an update already handled (a platform retry, a double click) is marked
    ``duplicate`` and goes no further; so is the second copy of a key within one batch."""
    keys: dict[str, str] = {}
    for ctx in ctxs:
        if ctx.update.key in keys:
            ctx.duplicate = True
        else:
            keys[ctx.update.key] = ctx.update.channel
    stored = frozenset(c.update.key for c in ctxs if c.update.stored)
    fresh = await inbox.begin_handling(session, keys, now=ctxs[0].now, stored=stored)
    for ctx in ctxs:
        if ctx.update.key not in fresh:
            ctx.duplicate = True


def _spoke(u: Update) -> bool:
    """A member's message in a chat (a page's button is not a word said in a group)."""
    return u.text is not None and u.event is None and not u.page


async def membership(session: AsyncSession, ctxs: Sequence[Context]) -> None:
    """Keep members, groups and who-is-in-which-group true, with activity counters."""
    if not ctxs:
        return
    now = ctxs[0].now
    members: dict[community.Key, Sighting] = {}
    groups: dict[community.Key, Sighting] = {}
    spoken: Counter[tuple[community.Key, community.Key]] = Counter()  # (group, member) -> lines
    speakers: set[community.Key] = set()
    for ctx in ctxs:
        u = ctx.update
        spoke = _spoke(u)
        members.setdefault(u.member_key, Sighting()).add(
            name=u.sender_name, spoke=spoke, channel_code=u.channel_code if u.event == CONTACT_ADDED else None,
        )
        if spoke:
            speakers.add(u.member_key)
        if u.chat is not None:
            groups.setdefault((u.channel, u.chat), Sighting()).add(name=u.chat_name, spoke=spoke)
            if spoke:
                spoken[((u.channel, u.chat), u.member_key)] += 1
    # The community's day (the sign-in day): retention counts who spoke on which day.
    member_refs, group_refs = await membership_batch.touch_all(
        session, members, groups, spoken, speakers, day=now.astimezone(ctxs[0].zone).date(), now=now)
    for ctx in ctxs:
        u = ctx.update
        ctx._member = member_refs[u.member_key]
        if u.chat is not None:
            ctx._group = group_refs[(u.channel, u.chat)]
    # Joins, leaves and contact changes are rare and order-sensitive: one statement each, in order.
    for ctx in ctxs:
        if ctx.update.event in (CONTACT_ADDED, CONTACT_LOST):
            status = await _contact_status(session, ctx)
            if ctx.member.status != status:
                await community.set_member_status(session, ctx.member.id, status, now=now)
        if ctx._group is not None and ctx.update.event == MEMBER_JOINED:
            ctx.joined = await community.record_join(session, ctx._group.id, ctx.member.id, now=now)
        elif ctx._group is not None and ctx.update.event == MEMBER_LEFT:
            await community.record_leave(session, ctx._group.id, ctx.member.id, now=now)


async def _contact_status(session: AsyncSession, ctx: Context) -> str:
    """Keep the staff relationship the contact event is about, and say the customer's status:
    active while any staff member still has them; lost only when the last relationship ends by
    a real deletion (a transfer to a colleague is no loss). A channel that names no staff member
    (the sandbox) has one relationship per customer: its end is a loss."""
    u = ctx.update
    if u.event == CONTACT_ADDED:
        if u.staff:
            await relationships.begin(session, ctx.member.id, u.staff, at=u.at, channel_code=u.channel_code)
        return "active"
    if u.ended_by == relationships.BY_TRANSFER:
        if u.staff:
            await relationships.end(session, ctx.member.id, u.staff, how=u.ended_by, at=u.at)
        return ctx.member.status
    if not u.staff:
        return "lost"
    await relationships.end(session, ctx.member.id, u.staff, how=u.ended_by or relationships.BY_STAFF, at=u.at)
    return "active" if await relationships.still_a_customer(session, ctx.member.id) else "lost"


async def audit_command(ctx: Context, cmd: Command, result: str) -> None:
    await audit.record(
        ctx.session, actor=ctx.actor, action=f"/{cmd.name}", result=result, now=ctx.now,
        args={"args": ctx.args, "chat": ctx.update.chat, "role": ctx.role},
    )
