"""The community's numbers for operators: ``/stats`` and the robot's daily report."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot import periods
from bot.config import Config
from bot.texts import Texts
from storage.models import KocApplication, Member, PointEntry, Redemption, SignIn


async def _count(session: AsyncSession, query: Any) -> int:
    return int((await session.execute(query)).scalar_one() or 0)


async def summary(session: AsyncSession, config: Config, texts: Texts, now: datetime) -> str:
    """Today and the last 7 days: new members by channel code, active members, sign-ins, points
    issued and spent, redemptions; KOC applications pending."""
    today, _ = periods.day_of(now, config.zone)
    lines = []
    for label, since in ((texts("stats_today"), today), (texts("stats_week"), today - timedelta(days=6))):
        by_code = (await session.execute(select(col(Member.channel_code), func.count())
                                         .where(col(Member.first_seen_at) >= since)
                                         .group_by(col(Member.channel_code)))).all()
        lines.append(texts(
            "stats_block", period=label,
            new="、".join(f"{code or texts('stats_no_code')} {n}" for code, n in by_code) or "0",
            active=await _count(session, select(func.count()).select_from(Member)
                                .where(col(Member.last_seen_at) >= since)),
            checkins=await _count(session, select(func.count()).select_from(SignIn).where(col(SignIn.at) >= since)),
            issued=await _count(session, select(func.sum(PointEntry.delta)).where(
                col(PointEntry.created_at) >= since, col(PointEntry.delta) > 0,
                col(PointEntry.kind).in_(("earn", "grant")))),
            spent=await _count(session, select(-func.sum(PointEntry.delta)).where(
                col(PointEntry.created_at) >= since, col(PointEntry.kind) == "spend")),
            redemptions=await _count(session, select(func.count()).select_from(Redemption)
                                     .where(col(Redemption.created_at) >= since)),
        ))
    pending = await _count(session, select(func.count()).select_from(KocApplication)
                           .where(col(KocApplication.status) == "pending"))
    return "\n".join([*lines, texts("stats_koc", pending=pending)])
