"""Lifecycle stages for other features: what decides a member's stage just happened (a KOC
approval, a purchase, a sign-in milestone), so it is recomputed at once, in the caller's
transaction, rather than at the job's next run (up to 10 minutes later)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlmodel import col

from bot.context import Context
from handlers.lifecycle.config import LIFECYCLE
from handlers.lifecycle.stages import BROAD, STAGES, decide
from storage.models import Member, SignIn
from storage.sql import table_of

__all__ = ["STAGES", "after_purchase", "after_signin", "after_signins", "recompute", "signins_since"]


async def recompute(ctx: Context, member_id: int | None = None) -> str:
    """The stage of ``member_id`` (default the sender) from what is in the caller's transaction
    now; stored if it changed. Returns it."""
    member = ctx.member.id if member_id is None else member_id
    row = (await ctx.session.execute(select(col(Member.id), col(Member.stage), col(Member.attributes))
                                     .where(col(Member.id) == member))).one()
    rules = ctx.config[LIFECYCLE]
    stage = (await decide(ctx.session, rules, [row], since=ctx.now - timedelta(days=rules.window_days)))[member]
    if stage != (row.stage or BROAD):  # no stage yet reads as 泛用户: no write for most members
        await ctx.session.execute(update(table_of(Member)).where(table_of(Member).c.id == member).values(stage=stage))
    return stage


async def after_signin(ctx: Context) -> None:
    """The sender signed in: on the day that makes their sign-in days in the window reach
    ``engaged_days`` or ``core_days`` (a milestone), their stage is recomputed."""
    rules = ctx.config[LIFECYCLE]
    days = (await ctx.session.execute(select(func.count()).select_from(SignIn).where(
        col(SignIn.member_id) == ctx.member.id, col(SignIn.at) >= ctx.now - timedelta(days=rules.window_days),
    ))).scalar_one()
    if days in (rules.engaged_days, rules.core_days):
        await recompute(ctx)


def signins_since(ctx: Context) -> datetime:
    """Since when sign-ins count toward a stage (``[lifecycle] window_days``), so a batch of
    sign-ins can count them in the read that records them (``after_signins``' ``days``)."""
    return ctx.now - timedelta(days=ctx.config[LIFECYCLE].window_days)


async def after_signins(ctxs: list[Context], days: dict[int, int] | None = None) -> None:
    """``after_signin`` for the senders of a batch who signed in: one count for all, or none
    when the caller counted each member's sign-ins since ``signins_since`` (``days``)."""
    if not ctxs:
        return
    rules = ctxs[0].config[LIFECYCLE]
    if days is None:
        rows = (await ctxs[0].session.execute(select(col(SignIn.member_id), func.count()).where(
            col(SignIn.member_id).in_([c.member.id for c in ctxs]), col(SignIn.at) >= signins_since(ctxs[0]),
        ).group_by(col(SignIn.member_id)))).all()
        days = {r[0]: r[1] for r in rows}
    for ctx in ctxs:
        if days.get(ctx.member.id, 0) in (rules.engaged_days, rules.core_days):
            await recompute(ctx)


async def after_purchase(ctx: Context, task: str | None = None, *, member_id: int | None = None) -> None:
    """A member bought: said so (KOC screening, ``task`` None) or a check-in of ``task`` was
    credited, which counts when it is one of ``[lifecycle] purchase_tasks``."""
    if task is None or task in ctx.config[LIFECYCLE].purchase_tasks:
        await recompute(ctx, member_id)
