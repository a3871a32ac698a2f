"""The scheduler of playbooks (DESIGN §7): APScheduler 3 on the asyncio loop, its jobs kept in
siyu's database, one leader at a time.

- The job store is SQLAlchemy (table ``apscheduler_jobs``, created by a migration) and is
  synchronous, so the scheduler's job processing runs in a thread and coroutine jobs are
  handed back to the loop thread-safely: the loop never waits on the database.
- Policy: ``coalesce`` (missed runs of a job collapse into one), ``misfire_grace_time`` from
  ``[scheduler] misfire_grace_s``, ``max_instances`` 1, the ``[checkin] timezone``.
- A job only plans (``handlers.sop``): one broadcast per (playbook, slot) under a unique key,
  so a restart, a catch-up and a second process can never plan a slot twice.
- On PostgreSQL a session advisory lock elects the leader; a process without it tries again
  every ``leader_check_s`` and takes over within that when the leader's connection dies. On
  SQLite there is one process, which leads.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.base import run_coroutine_job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler, run_in_event_loop
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.tasks import cancel
from bot.config import Config, PlaybookConfig
from bot.texts import Texts
from storage.engine import Database, install_sqlite_pragmas, sync_url

log = logging.getLogger("siyu.scheduler")
# pg_advisory_lock key: "siyu" in ASCII, the scheduler's leadership.
LEADER_LOCK = 0x73697975
RELATIVE_EVERY_S = 60


class _LoopExecutor(AsyncIOExecutor):
    """Submits coroutine jobs to the loop from the scheduler's processing thread."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        coro = run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name)
        future = asyncio.run_coroutine_threadsafe(coro, self._eventloop)

        def done(f: Any) -> None:
            self._pending_futures.discard(f)
            try:
                events = f.result()
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        self._pending_futures.add(future)
        future.add_done_callback(done)


class _ThreadedScheduler(AsyncIOScheduler):
    """``_process_jobs`` reads and writes the SQL job store: it runs in a thread."""

    _busy = False
    _again = False

    @run_in_event_loop
    def wakeup(self) -> None:
        self._stop_timer()
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._eventloop.run_in_executor(None, self._process_jobs).add_done_callback(self._processed)

    def _processed(self, future: "asyncio.Future[float | None]") -> None:
        self._busy = False
        if self._again or future.exception() is not None:
            if future.exception() is not None:
                log.error("processing scheduled jobs failed: %s", future.exception())
            self._again = False
            self._start_timer(1.0)
            return
        if self.running:
            self._start_timer(future.result())


def trigger_of(playbook: PlaybookConfig, zone: str) -> Any:
    if playbook.cron is not None:
        return CronTrigger.from_crontab(playbook.cron, timezone=zone)
    if playbook.at is not None:
        return DateTrigger(playbook.at)
    return None  # relative playbooks: the relative job plans them


class PlaybookScheduler:
    def __init__(self, db: Database, config: Config, texts: Texts, clock: Clock) -> None:
        self.db, self.config, self.texts, self.clock = db, config, texts, clock
        self.leader = False
        self._scheduler: _ThreadedScheduler | None = None
        self._lock_conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what the jobs do (module-level functions call these: jobs are stored by reference) --

    async def fire(self, name: str) -> None:
        from handlers import sop

        playbook = next((p for p in self.config.sop if p.name == name and p.enabled), None)
        if playbook is None:
            log.warning("a stored job names playbook %r, which the config no longer has", name)
            return
        trigger = trigger_of(playbook, self.config.checkin.timezone)
        now = self.clock.now()
        slot = sop.latest_slot(trigger, now, self.config.scheduler.misfire_grace_s) or now
        await sop.plan_slot(self.db, self.config, self.texts, playbook, slot, now=now)

    async def relative(self) -> None:
        from handlers import sop

        await sop.plan_relative(self.db, self.config, self.texts, self.clock.now())

    # -- leadership and lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._lead(), name="siyu-scheduler")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._resign()

    async def _lead(self) -> None:
        check = self.config.scheduler.leader_check_s
        while True:
            try:
                if not self.leader and await self._elect():
                    await self._take_over()
                elif self.leader and not await self._still_leader():
                    log.warning("lost the scheduler's leadership (database connection gone); standing by")
                    await self._resign()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler leadership check failed; again in %.0fs", check)
                await self._resign()
            await asyncio.sleep(check)

    async def _elect(self) -> bool:
        if self.db.is_sqlite:
            return True  # one process per SQLite file
        conn = await self.db.engine.connect()
        try:
            won = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK})).scalar_one()
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if not won:
            await conn.close()
            return False
        self._lock_conn = conn  # the lock lives as long as this session
        return True

    async def _still_leader(self) -> bool:
        if self._lock_conn is None:
            return self.db.is_sqlite
        try:
            await self._lock_conn.execute(text("SELECT 1"))
            await self._lock_conn.commit()
            return True
        except Exception:
            return False

    async def _take_over(self) -> None:
        from handlers import sop

        global _current
        _current = self
        self.leader = True
        zone, settings = self.config.checkin.timezone, self.config.scheduler
        engine = create_engine(sync_url(self.config.storage.url))
        if engine.dialect.name == "sqlite":
            # BEGIN IMMEDIATE: the store reads then writes in one transaction, and a deferred
            # one would fail at once ("database is locked") rather than wait for siyu's writer.
            install_sqlite_pragmas(engine, immediate=True)
        scheduler = _ThreadedScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)}, executors={"default": _LoopExecutor()},
            job_defaults={"coalesce": True, "misfire_grace_time": settings.misfire_grace_s, "max_instances": 1},
            timezone=zone, event_loop=asyncio.get_running_loop(),
        )
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        # Starting writes the jobs to the store: in a thread too. On the loop, a write waiting
        # for SQLite's lock would stall the very transaction that holds it.
        await asyncio.to_thread(self._start, scheduler)
        self._scheduler = scheduler
        log.info("this process runs the scheduler: %d playbook(s)", len(self.config.sop))
        # Slots that passed while no process led: caught up within the grace time, else
        # recorded as missed. Unique keys make this and APScheduler's own misfire run agree.
        await sop.catch_up(self.db, self.config, self.texts, self.clock.now())

    def _start(self, scheduler: _ThreadedScheduler) -> None:
        """Make the stored jobs the config's playbooks and start (in a thread: it is all
        job-store I/O)."""
        zone = self.config.checkin.timezone
        wanted: set[str] = set()
        for playbook in self.config.sop:
            trigger = trigger_of(playbook, zone)
            if not playbook.enabled or trigger is None:
                continue
            if isinstance(trigger, DateTrigger) and playbook.at is not None and playbook.at < self.clock.now():
                continue  # a one-off in the past: catch_up decides about it
            job_id = f"sop:{playbook.name}"
            wanted.add(job_id)
            scheduler.add_job(fire_playbook, trigger, args=[playbook.name], id=job_id, name=playbook.name,
                              replace_existing=True)
        if any(p.enabled and trigger_of(p, zone) is None for p in self.config.sop):
            wanted.add("sop:relative")
            scheduler.add_job(plan_relative_playbooks, IntervalTrigger(seconds=RELATIVE_EVERY_S), id="sop:relative",
                              replace_existing=True)
        scheduler.start()
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()  # a playbook the config no longer has

    def _missed(self, event: JobExecutionEvent) -> None:
        """APScheduler skipped a run past the grace time: record and report it (on the loop)."""
        from handlers import sop

        name = event.job_id.removeprefix("sop:")
        playbook = next((p for p in self.config.sop if p.name == name), None)
        if playbook is None or self._scheduler is None:
            return
        asyncio.run_coroutine_threadsafe(
            sop.record_missed(self.db, playbook, event.scheduled_run_time, now=self.clock.now(),
                              reason="siyu was busy or down past [scheduler] misfire_grace_s"),
            self._scheduler._eventloop)

    async def _resign(self) -> None:
        global _current
        if self._scheduler is not None:
            scheduler, self._scheduler = self._scheduler, None
            scheduler.shutdown(wait=False)
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            try:
                # Invalidate, not just close: a pooled connection's session (and its advisory
                # lock) would outlive close(); a closed one releases the lock at once.
                await conn.invalidate()
                await conn.close()
            except Exception:
                pass
        if _current is self:
            _current = None
        self.leader = False


_current: PlaybookScheduler | None = None


async def fire_playbook(name: str) -> None:
    """A stored job: plan the playbook's current slot (the leader's scheduler runs it)."""
    if _current is not None:
        await _current.fire(name)


async def plan_relative_playbooks() -> None:
    """A stored job: plan the day-N-after playbooks that have come due."""
    if _current is not None:
        await _current.relative()
