"""The scheduler: APScheduler 3 on the asyncio loop, its jobs kept in siyu's database, run by
one elected process (DESIGN §7). Playbooks use it (``handlers.broadcasts.scheduler``); what
every process does by the clock is a ``bot.jobs.Job`` instead.

- The job store is SQLAlchemy (table ``apscheduler_jobs``, created by a migration) and is
  synchronous, so the scheduler's job processing runs in a thread and coroutine jobs are
  handed back to the loop thread-safely: the loop never waits on the database.
- Policy: ``coalesce`` (missed runs of a job collapse into one), ``misfire_grace_time``
  given by the user, ``max_instances`` 1, the community's time zone.
- On PostgreSQL a session advisory lock elects the leader; a process without it tries again
  every ``leader_check_s`` and takes over within that when the leader's connection dies. On
  SQLite there is one process, which leads.

A subclass says which jobs it keeps (``plan_jobs``, in the thread), what to do on becoming
the leader (``took_over``) and about a run APScheduler skipped past the grace (``missed``).
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
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.background import cancel
from bot.config import Config
from storage.engine import Database, install_sqlite_pragmas, sync_url

log = logging.getLogger("siyu.scheduler")
# pg_advisory_lock key: "siyu" in ASCII, the scheduler's leadership.
LEADER_LOCK = 0x73697975

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

    def _processed(self, future: asyncio.Future[float | None]) -> None:
        self._busy = False
        if self._again or future.exception() is not None:
            if future.exception() is not None:
                log.error("processing scheduled jobs failed: %s", future.exception())
            self._again = False
            self._start_timer(1.0)
            return
        if self.running:
            self._start_timer(future.result())


class LeaderScheduler:
    """APScheduler run by the one process that holds the leader lock."""

    def __init__(self, db: Database, config: Config, *, misfire_grace_s: int, leader_check_s: float) -> None:
        self.db, self.config = db, config
        self.misfire_grace_s, self.leader_check_s = misfire_grace_s, leader_check_s
        self.leader = False
        self._scheduler: _ThreadedScheduler | None = None
        self._lock_conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what a subclass says ----------------------------------------------------------------

    def plan_jobs(self, scheduler: AsyncIOScheduler) -> set[str]:
        """Add the jobs wanted (``replace_existing``) and return their ids: stored jobs with other
        ids are removed. Runs in a thread, before the scheduler starts: it is job-store I/O."""
        return set()

    def leading(self, now_leading: bool) -> None:
        """This process starts (before any job can run) or stops leading."""

    async def took_over(self) -> None:
        """This process has just become the leader and its jobs run (catch up what passed while
        none led)."""

    async def missed(self, job_id: str, scheduled: datetime) -> None:
        """APScheduler skipped a run of ``job_id`` past the grace time."""

    # -- leadership and lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._lead(), name="siyu-scheduler")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._resign()

    async def _lead(self) -> None:
        check = self.leader_check_s
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
        self.leader = True
        self.leading(True)
        engine = create_engine(sync_url(self.config.storage.url))
        if engine.dialect.name == "sqlite":
            # BEGIN IMMEDIATE: the store reads then writes in one transaction, and a deferred
            # one would fail at once ("database is locked") rather than wait for siyu's writer.
            install_sqlite_pragmas(engine, immediate=True)
        scheduler = _ThreadedScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)}, executors={"default": _LoopExecutor()},
            job_defaults={"coalesce": True, "misfire_grace_time": self.misfire_grace_s, "max_instances": 1},
            timezone=self.config.community.timezone, event_loop=asyncio.get_running_loop(),
        )
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        # Starting writes the jobs to the store: in a thread too. On the loop, a write waiting
        # for SQLite's lock would stall the very transaction that holds it.
        await asyncio.to_thread(self._start, scheduler)
        self._scheduler = scheduler
        await self.took_over()

    def _start(self, scheduler: _ThreadedScheduler) -> None:
        wanted = self.plan_jobs(scheduler)
        scheduler.start()
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()  # a job the config no longer has

    def _missed(self, event: JobExecutionEvent) -> None:
        """APScheduler skipped a run past the grace time: hand it to ``missed`` on the loop."""
        if self._scheduler is not None:
            asyncio.run_coroutine_threadsafe(self.missed(event.job_id, event.scheduled_run_time),
                                             self._scheduler._eventloop)

    async def _resign(self) -> None:
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
        if self.leader:
            self.leading(False)
        self.leader = False
