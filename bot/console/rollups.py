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
        last = await rollups.rolled_up_at(session)
    # Deliveries settle for days after their slot (owners confirm late): the last 3 days again.
    # And every day since the last rollup: it was rolled up before it had ended (at a start, or
    # before siyu stopped for a while).
    since_last = max(first, last.astimezone(zone).date()) if last else today
    days = {today, yesterday, today - timedelta(days=2)} | {
        first + timedelta(days=i) for i in range(window + 1) if first + timedelta(days=i) not in done_days} | {
        since_last + timedelta(days=i) for i in range((today - since_last).days + 1)}
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
        await rollups.mark_rolled_up(session, now)
    log.debug("rolled up %d day(s), %d group(s), %d cohort(s)", len(days), groups, len(cohorts))
    return len(days)


async def refresh_today(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Today's numbers and group snapshot only: quick, for right after a start (the full
    ``refresh`` fills earlier days at its first interval)."""
    today = now.astimezone(config.zone).date()
    async with db.transaction() as session:
        await rollups.rollup_day(session, local_day(today, config.zone))
    async with db.transaction() as session:
        await rollups.snapshot_groups(session, today, active_since=now - ACTIVE_WINDOW)
        await rollups.mark_rolled_up(session, now)
    return 1


def jobs(config: Config) -> list[Job]:
    """The rollup job. Its first run is at start and quick (today's numbers: right after a start,
    or a restart after days away, the overview would otherwise show old numbers until the first
    interval has passed); then the whole refresh, every ``[console] rollup_every_s``."""
    started = False

    async def run(db: Database, config: Config, texts: Texts, now: datetime) -> int:
        nonlocal started
        if not started:
            started = True
            return await refresh_today(db, config, texts, now)
        return await refresh(db, config, texts, now)

    return [Job("metrics_rollup", run, every_s=config[CONSOLE].rollup_every_s, at_start=True)]
