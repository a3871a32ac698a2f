"""The job that keeps the console's rollups current: today's numbers and group snapshot every
``[console] rollup_every_s``, yesterday's once more after midnight (late events), the last
``[console] default_days`` days filled where missing, and the retention of the cohorts whose
day 1, 7 or 30 has just ended."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot import periods
from bot.config import Config
from bot.console.config import CONSOLE
from bot.jobs import Job
from bot.texts import Texts
from storage import rollups
from storage.engine import Database

log = logging.getLogger("siyu.rollup")
ACTIVE_WINDOW = timedelta(days=7)  # the articles' activity rate: spoke in the last 7 days


def local_day(day: date, zone: ZoneInfo) -> rollups.Day:
    return rollups.Day(day, *periods.day_span(day, zone))


async def refresh(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Roll up what may have changed since the last run; how many days were written."""
    zone = config.zone
    today = now.astimezone(zone).date()
    yesterday = today - timedelta(days=1)
    window = config[CONSOLE].default_days + rollups.RETENTION_DAYS[-1]
    first = today - timedelta(days=window)
    async with db.read() as session:
        done_days = await rollups.days_with_metrics(session, first)
        done_cohorts = await rollups.cohorts_with_rows(session, first)
    # Deliveries settle for days after their slot (owners confirm late): the last 3 days again.
    days = {today, yesterday, today - timedelta(days=2)} | {
        first + timedelta(days=i) for i in range(window + 1) if first + timedelta(days=i) not in done_days}
    cohorts = {today, yesterday} | {yesterday - timedelta(days=n) for n in rollups.RETENTION_DAYS} | {
        first + timedelta(days=i) for i in range(window + 1) if first + timedelta(days=i) not in done_cohorts}
    # One transaction per day: short write transactions (SQLite has one writer).
    for day in sorted(days):
        async with db.transaction() as session:
            await rollups.rollup_day(session, local_day(day, zone))
    async with db.transaction() as session:
        groups = await rollups.snapshot_groups(session, today, active_since=now - ACTIVE_WINDOW)
    async with db.transaction() as session:
        await rollups.rollup_cohorts(session, [local_day(c, zone) for c in sorted(cohorts)], last_complete=yesterday)
    log.debug("rolled up %d day(s), %d group(s), %d cohort(s)", len(days), groups, len(cohorts))
    return len(days)


def jobs(config: Config) -> list[Job]:
    return [Job("metrics_rollup", refresh, every_s=config[CONSOLE].rollup_every_s)]
