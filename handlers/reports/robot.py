"""What the group robot tells the operators' group: the daily report, and alerts as they happen
(a broadcast that ended with failed or expired groups, KOC applications waiting for review).
Each is said once: its key is claimed in the transaction that queues it."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

import handlers.reports.stats as stats
from bot import periods
from bot.channels.robot.config import ROBOT
from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from storage import broadcasts, once, outbox
from storage.engine import Database
from storage.models import Broadcast, Delivery, KocApplication, Member

LOOK_BACK = timedelta(days=2)


def _to_ops(config: Config, text: str) -> outbox.Outgoing:
    return outbox.Outgoing("robot", text, chat=config[ROBOT].chat)


async def daily_report(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    report_at = config[ROBOT].daily_report_at
    if not report_at:
        return 0
    day, _ = periods.day_of(now, config.zone)
    at = periods.parse_hhmm(report_at)
    if now < day.replace(hour=at.hour, minute=at.minute):
        return 0
    async with db.transaction() as session:
        if not await once.claim(session, f"robot:daily:{day.date().isoformat()}", now=now):
            return 0
        summary = await stats.summary(session, config, texts, now)
        text = texts("report_daily", date=day.strftime("%m月%d日")) + "\n" + summary
        await outbox.enqueue(session, [_to_ops(config, text)], now=now)
    return 1


async def koc_waiting(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """One alert per batch of applications not alerted before."""
    async with db.read() as session:
        rows = (await session.execute(
            select(KocApplication, Member).join(Member, col(Member.id) == col(KocApplication.member_id))
            .where(col(KocApplication.status) == "pending", col(KocApplication.created_at) >= now - LOOK_BACK)
            .order_by(col(KocApplication.id)))).all()
    if not rows:
        return 0
    async with db.transaction() as session:
        fresh = [(a, m) for a, m in rows if await once.claim(session, f"robot:koc:{a.id}", now=now)]
        if fresh:
            lines = [texts("report_koc_line", who=m.name or m.external_id, score=a.score, type=a.recommended_type)
                     for a, m in fresh]
            text = texts("report_koc", count=len(fresh)) + "\n" + "\n".join(lines)
            await outbox.enqueue(session, [_to_ops(config, text)], now=now)
    return len(fresh)


async def broadcast_failures(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """An alert for each broadcast that has ended with failed or expired groups."""
    async with db.read() as session:
        of_it = col(Delivery.broadcast_id) == col(Broadcast.id)
        open_ = select(col(Delivery.id)).where(
            of_it, col(Delivery.status).in_((broadcasts.PLANNED, broadcasts.QUEUED, broadcasts.AWAITING_OWNER)))
        failed = select(col(Delivery.id)).where(
            of_it, col(Delivery.status).in_((broadcasts.FAILED, broadcasts.EXPIRED)))
        ended = list((await session.execute(select(Broadcast).where(
            col(Broadcast.status) == broadcasts.PLANNED, col(Broadcast.planned_at) >= now - LOOK_BACK,
            ~open_.exists(), failed.exists(),
        ).order_by(col(Broadcast.id)))).scalars())
    sent = 0
    for b in ended:
        async with db.transaction() as session:
            if not await once.claim(session, f"robot:broadcast:{b.id}", now=now):
                continue
            counts = await broadcasts.progress(session, b.id)
            reasons = (await session.execute(select(col(Delivery.reason)).where(
                col(Delivery.broadcast_id) == b.id, col(Delivery.status).in_((broadcasts.FAILED, broadcasts.EXPIRED)))
                .limit(1))).scalar_one_or_none()
            await outbox.enqueue(session, [_to_ops(config, texts(
                "report_broadcast_failed", id=b.id, name=b.playbook or b.created_by, failed=counts[broadcasts.FAILED],
                expired=counts[broadcasts.EXPIRED], delivered=counts[broadcasts.DELIVERED], reason=reasons or "—"))],
                now=now)
            sent += 1
    return sent


def jobs(config: Config) -> list[Job]:
    robot = config[ROBOT]
    if not robot.enabled:
        return []
    daily = [Job("robot_daily", daily_report, every_s=60.0)]
    alerts = [Job("robot_koc", koc_waiting, every_s=60.0), Job("robot_broadcasts", broadcast_failures, every_s=60.0)]
    return daily + (alerts if robot.alerts else [])
