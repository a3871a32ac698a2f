"""Periodic jobs: work due by the clock rather than by a message, all run by one ``JobRunner``.

Every process runs every job (as each one takes webhooks and delivers), so a job guards itself
against doing its work twice: a key claimed in the transaction that does it, a conditional
update, ``FOR UPDATE SKIP LOCKED``, an advisory lock. A restart or a second process then repeats
nothing. Features bring their jobs (``Feature.jobs``), channels theirs (``Channel.jobs``); the
runner adds the one the kernel owns: passed flow deadlines, which become ``flow_deadline``
updates fed through the dispatcher, so each fires under the member's lock, in a transaction,
and, keyed by the flow row's version, once.

Playbooks are not jobs: they fire at their own times, planned by the scheduler
(``bot.scheduler``, APScheduler) that one elected process runs.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.background import cancel, every
from bot.clock import Clock
from bot.config import Config
from bot.texts import Texts
from bot.update import FLOW_DEADLINE, Update
from storage import flows, inbox, outbox
from storage.engine import Database

if TYPE_CHECKING:
    from bot.dispatcher import Dispatcher

log = logging.getLogger("siyu.jobs")

JobRun = Callable[[Database, Config, Texts, datetime], Awaitable[int]]
TICK_S = 5.0
DEADLINE_BATCH = 500
RETENTION_S = 3600.0  # the inbox's and the outbox's retention run hourly
# Rows one retention transaction deletes: short, so SQLite's only writer is soon free again.
RETENTION_BATCH = 2000


async def inbox_retention(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Delete the inbox's handled rows older than ``[storage] inbox_keep_days`` (each update's
    dedup key, and for WeCom the message itself: kept no longer than a retry can come), a
    short transaction at a time."""
    before = now - timedelta(days=config.storage.inbox_keep_days)
    deleted = 0
    while True:
        async with db.transaction() as session:
            done = await inbox.delete_handled(session, before=before, limit=RETENTION_BATCH)
        deleted += done
        if done < RETENTION_BATCH:
            return deleted


async def outbox_retention(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Delete the outbox's settled rows (delivered, failed, withdrawn, merged into a digest)
    older than ``[outbox] keep_days``: a rush hour leaves a row per sign-in, and nothing reads
    them after their day. Found by a read, deleted a short transaction at a time."""
    before = now - timedelta(days=config.outbox.keep_days)
    deleted = 0
    while True:
        async with db.read() as session:
            ids = await outbox.settled_before(session, before=before, limit=RETENTION_BATCH)
        if not ids:
            return deleted
        async with db.transaction() as session:
            deleted += await outbox.delete_settled(session, ids)
        if len(ids) < RETENTION_BATCH:
            return deleted


@dataclass(frozen=True)
class Job:
    """``run(db, config, texts, now)`` does what is due and returns how much it did. Its first
    run is one interval after start (what is due at start-up waits for the process to settle),
    unless ``at_start``."""

    name: str
    run: JobRun
    every_s: float = 60.0
    at_start: bool = False


class JobRunner:
    """Runs each job every ``every_s`` (checked every ``tick_s``). A job that fails is logged
    and tried again at its next interval: the others still run."""

    def __init__(self, dispatcher: Dispatcher, clock: Clock, jobs: Iterable[Job] = (), *,
                 tick_s: float = TICK_S) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.tick_s = tick_s
        self.jobs = [Job("flow_deadlines", self._deadlines_job, every_s=tick_s, at_start=True),
                     Job("inbox_retention", inbox_retention, every_s=RETENTION_S),
                     Job("outbox_retention", outbox_retention, every_s=RETENTION_S), *jobs]
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"two jobs share a name: {sorted(n for n in names if names.count(n) > 1)}")
        self._last_run: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[int] | None = None

    async def run(self, name: str) -> int:
        """Run the job ``name`` now (operators' tools and tests); how much it did."""
        job = next((j for j in self.jobs if j.name == name), None)
        if job is None:
            raise KeyError(f"no job {name!r}; the jobs are {', '.join(j.name for j in self.jobs)}")
        d = self.dispatcher
        return await job.run(d.db, d.config, d.texts, self.clock.now())

    async def run_due(self, *, force: bool = False) -> dict[str, int]:
        """Run the jobs whose interval has passed (all with ``force``); what each did."""
        done: dict[str, int] = {}
        for job in self.jobs:
            at = asyncio.get_running_loop().time()
            last = self._last_run.setdefault(job.name, at - (job.every_s if job.at_start else 0))
            if not force and at - last < job.every_s:
                continue
            self._last_run[job.name] = at
            # Shielded: stopping lets the job under way finish (see stop) rather than cutting it
            # inside a transaction.
            self._current = asyncio.ensure_future(self.run(job.name))
            try:
                done[job.name] = await asyncio.shield(self._current)
            except Exception:
                log.exception("job %s failed; trying again in %.0fs", job.name, job.every_s)
        return done

    async def fire_deadlines(self, *, limit: int = DEADLINE_BATCH) -> int:
        """Feed the flow deadlines passed by now (at most ``limit``) as updates; how many were fed."""
        now = self.clock.now()
        async with self.dispatcher.db.read() as session:
            due = await flows.due(session, now=now, limit=limit)
        for row in due:
            await self.dispatcher.feed(Update(
                channel=row.channel, key=f"flow:{row.member_id}:{row.flow}:{row.version}:deadline",
                sender=row.external_id, at=now, event=FLOW_DEADLINE, flow=(row.flow, row.version),
            ))
        return len(due)

    async def _deadlines_job(self, db: Database, config: Config, texts: Texts, now: datetime) -> int:
        return await self.fire_deadlines()

    def start(self) -> None:
        self._task = every(self.tick_s, self.run_due, name="jobs", log=log)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop running jobs; one under way may finish (at most ``timeout`` seconds). A job cut
        off inside a transaction left its connection checked out when the database closed,
        and on SQLite that connection kept the only writer from the next process."""
        await cancel(self._task)
        self._task = None
        if self._current is not None and not self._current.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._current), timeout)
            except TimeoutError:
                self._current.cancel()
            except Exception:
                log.exception("a job failed while siyu was stopping")
        self._current = None
