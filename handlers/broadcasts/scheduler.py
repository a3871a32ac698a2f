"""Playbooks on the scheduler (``bot.scheduler``): a cron or dated playbook is a stored job that
plans its slot when it fires, one job plans the day-N playbooks every minute, and the leader
catches up the slots that passed while no process led. Jobs are stored by reference: the
module-level functions below are what APScheduler calls, on the leader's scheduler."""
from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

import handlers.broadcasts.playbooks as playbooks
from bot.clock import Clock
from bot.config import Config
from bot.scheduler import LeaderScheduler
from bot.texts import Texts
from handlers.broadcasts.config import PLAYBOOKS, SCHEDULER
from storage.engine import Database

log = logging.getLogger("siyu.scheduler")
RELATIVE_EVERY_S = 60


class PlaybookScheduler(LeaderScheduler):
    def __init__(self, db: Database, config: Config, texts: Texts, clock: Clock) -> None:
        settings = config[SCHEDULER]
        super().__init__(db, config, misfire_grace_s=settings.misfire_grace_s, leader_check_s=settings.leader_check_s)
        self.texts, self.clock = texts, clock

    async def fire(self, name: str) -> None:
        playbook = next((p for p in self.config[PLAYBOOKS] if p.name == name and p.enabled), None)
        if playbook is None:
            log.warning("a stored job names playbook %r, which the config no longer has", name)
            return
        now = self.clock.now()
        slot = playbooks.latest_slot(playbooks.trigger_of(playbook, self.config), now, self.misfire_grace_s) or now
        await playbooks.plan_slot(self.db, self.config, self.texts, playbook, slot, now=now)

    async def relative(self) -> None:
        await playbooks.plan_relative(self.db, self.config, self.texts, self.clock.now())

    def plan_jobs(self, scheduler: AsyncIOScheduler) -> set[str]:
        """The config's playbooks as stored jobs."""
        wanted: set[str] = set()
        for playbook in self.config[PLAYBOOKS]:
            trigger = playbooks.trigger_of(playbook, self.config)
            if not playbook.enabled or trigger is None:
                continue
            if isinstance(trigger, DateTrigger) and playbook.at is not None and playbook.at < self.clock.now():
                continue  # a one-off in the past: catch_up decides about it
            job_id = f"sop:{playbook.name}"
            wanted.add(job_id)
            scheduler.add_job(fire_playbook, trigger, args=[playbook.name], id=job_id, name=playbook.name,
                              replace_existing=True)
        if any(p.enabled and playbooks.trigger_of(p, self.config) is None for p in self.config[PLAYBOOKS]):
            wanted.add("sop:relative")
            scheduler.add_job(plan_relative_playbooks, IntervalTrigger(seconds=RELATIVE_EVERY_S), id="sop:relative",
                              replace_existing=True)
        return wanted

    def leading(self, now_leading: bool) -> None:
        global _current
        if now_leading:
            _current = self
        elif _current is self:
            _current = None

    async def took_over(self) -> None:
        log.info("this process runs the scheduler: %d playbook(s)", len(self.config[PLAYBOOKS]))
        # Slots that passed while no process led: caught up within the grace time, else
        # recorded as missed. Unique keys make this and APScheduler's own misfire run agree.
        await playbooks.catch_up(self.db, self.config, self.texts, self.clock.now())

    async def missed(self, job_id: str, scheduled: datetime) -> None:
        """A run skipped past the grace time: recorded and reported."""
        name = job_id.removeprefix("sop:")
        playbook = next((p for p in self.config[PLAYBOOKS] if p.name == name), None)
        if playbook is not None:
            await playbooks.record_missed(self.db, playbook, scheduled, now=self.clock.now(),
                                          reason="siyu was busy or down past [scheduler] misfire_grace_s")


_current: PlaybookScheduler | None = None


async def fire_playbook(name: str) -> None:
    """A stored job: plan the playbook's current slot (the leader's scheduler runs it)."""
    if _current is not None:
        await _current.fire(name)


async def plan_relative_playbooks() -> None:
    """A stored job: plan the day-N-after playbooks that have come due."""
    if _current is not None:
        await _current.relative()
