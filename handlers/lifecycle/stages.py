"""Lifecycle stages (泛用户 / 精准用户 / 核心用户 / 超级用户), the brand articles' layers of a
private domain, kept on each member by a job (``[lifecycle]``) for operators to see and count.
A member without a stage (``None``) is 泛用户: most members are, and need no write."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.config import Config
from bot.context import Context
from bot.router import Router
from bot.texts import Texts
from handlers.lifecycle.config import LIFECYCLE, LifecycleConfig
from storage.engine import Database
from storage.models import KocApplication, Member, SignIn, TaskCheckin
from storage.sql import table_of

log = logging.getLogger("siyu.lifecycle")
BROAD, ENGAGED, CORE, SUPER = "泛用户", "精准用户", "核心用户", "超级用户"
STAGES = (BROAD, ENGAGED, CORE, SUPER)
BATCH = 1000


def stage_of(rules: LifecycleConfig, *, active_days: int, bought: bool, koc: bool) -> str:
    if koc:
        return SUPER
    if bought and active_days >= rules.core_days:
        return CORE
    if bought or active_days >= rules.engaged_days:
        return ENGAGED
    return BROAD


def _bought(attributes: dict[str, Any]) -> bool:
    return attributes.get("bought") is True


async def decide(session: AsyncSession, rules: LifecycleConfig, rows: Sequence[Any], *,
                 since: datetime) -> dict[int, str]:
    """The stage of each member of ``rows`` (each with ``id`` and ``attributes``), from their
    sign-in days since ``since``, an approved KOC application and a purchase."""
    ids = [r.id for r in rows]
    days: dict[int, int] = {member: count for member, count in (await session.execute(
        select(col(SignIn.member_id), func.count())
        .where(col(SignIn.member_id).in_(ids), col(SignIn.at) >= since)
        .group_by(col(SignIn.member_id))))}
    koc = set((await session.execute(select(col(KocApplication.member_id)).where(
        col(KocApplication.member_id).in_(ids), col(KocApplication.status) == "approved"))).scalars())
    bought: set[int] = set()
    if rules.purchase_tasks:
        bought = set((await session.execute(select(col(TaskCheckin.member_id)).where(
            col(TaskCheckin.member_id).in_(ids), col(TaskCheckin.task).in_(rules.purchase_tasks),
            col(TaskCheckin.status) == "credited"))).scalars())
    return {r.id: stage_of(rules, active_days=days.get(r.id, 0), koc=r.id in koc,
                           bought=r.id in bought or _bought(r.attributes or {})) for r in rows}


async def refresh(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Recompute the stage of every member seen in the window, and of those with a stage above
    泛用户 (who may fall back); returns how many changed. Reads in batches of ``BATCH``. (What
    raises a stage is also recomputed at once, by ``services``: this job catches the rest, such
    as a member falling back.)"""
    rules = config[LIFECYCLE]
    since = now - timedelta(days=rules.window_days)
    changed, after = 0, 0
    while True:
        async with db.read() as session:
            stage = col(Member.stage)
            rows = (await session.execute(
                select(col(Member.id), stage, col(Member.attributes))
                .where(col(Member.id) > after,
                       (col(Member.last_seen_at) >= since) | (stage.is_not(None) & (stage != BROAD)))
                .order_by(col(Member.id)).limit(BATCH)
            )).all()
            if not rows:
                return changed
            decided = await decide(session, rules, rows, since=since)
        # No stage yet reads as 泛用户: no write for most members.
        updates = [{"member": r.id, "stage": decided[r.id]} for r in rows if decided[r.id] != (r.stage or BROAD)]
        if updates:
            table = table_of(Member)
            async with db.transaction() as session:
                await session.execute(update(table).where(table.c.id == bindparam("member"))
                                      .values(stage=bindparam("stage")), updates)
            changed += len(updates)
        after = rows[-1].id


router = Router("lifecycle")


@router.command("stages", role="viewer")
async def stages_command(ctx: Context) -> None:
    """查看会员生命周期分层：泛用户、精准用户、核心用户、超级用户各有多少人"""
    counts: dict[str, int] = {}
    for stage, count in (await ctx.session.execute(
            select(col(Member.stage), func.count()).where(col(Member.status) == "active")
            .group_by(col(Member.stage)))):
        # No stage yet reads as 泛用户.
        counts[stage or BROAD] = counts.get(stage or BROAD, 0) + count
    ctx.reply(ctx.texts("stages", lines="\n".join(
        ctx.texts("stages_line", stage=stage, count=counts.get(stage, 0)) for stage in reversed(STAGES))))
