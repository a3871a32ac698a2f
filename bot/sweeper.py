"""The sweeper: what is due by the clock rather than by a message.

- Passed flow deadlines become ``flow_deadline`` updates with a key made of the member, the flow
  and the row's version, fed through the dispatcher like any message: so each runs under the
  member's lock, in a transaction, and, deduplicated by that key, fires once even if two
  processes or a restart sweep it again.
- Points lots past their expiry are expired (one ledger entry each, keyed by the lot, so a
  second sweep changes nothing), and pending lots whose time has come are released.
- Periodic jobs (``bot.jobs.Job``: winners, polls, lifecycle stages) run every ``every_s``.
"""
from __future__ import annotations

import asyncio
import logging

from collections.abc import Iterable

from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.jobs import Job
from bot.tasks import cancel, every
from bot.update import FLOW_DEADLINE, Update
from storage import flows, points

log = logging.getLogger("siyu.sweeper")

SWEEP_EVERY_S = 5.0


class DeadlineSweeper:
    def __init__(self, dispatcher: Dispatcher, clock: Clock, *, every_s: float = SWEEP_EVERY_S,
                 jobs: Iterable[Job] = ()) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.every_s = every_s
        self.jobs = list(jobs)
        self._last_run: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self, limit: int = 500) -> int:
        """Fire what is due now; return how many deadlines were fed."""
        now = self.clock.now()
        async with self.dispatcher.db.read() as session:
            due = await flows.due(session, now=now, limit=limit)
        for row in due:
            await self.dispatcher.feed(Update(
                channel=row.channel, key=f"flow:{row.member_id}:{row.flow}:{row.version}:deadline",
                sender=row.external_id, at=now, event=FLOW_DEADLINE, flow=(row.flow, row.version),
            ))
        return len(due)

    async def expire_points_once(self) -> int:
        """Expire the points lots due now; return how many lots were expired."""
        now = self.clock.now()
        async with self.dispatcher.db.transaction() as session:
            expired = await points.expire(session, now=now)
            released = await points.release(session, now=now)
        if expired:
            log.info("expired %d points lot(s)", expired)
        if released:
            log.info("released %d pending points lot(s)", released)
        return expired

    async def run_jobs_once(self, *, force: bool = False) -> dict[str, int]:
        """Run the jobs whose interval has passed (all with ``force``); what each did. A job
        that fails is logged and tried again at its next interval: the others still run."""
        d = self.dispatcher
        done: dict[str, int] = {}
        for job in self.jobs:
            at = asyncio.get_running_loop().time()
            # A job's first run is one interval after start: what is due at start-up waits
            # for the process to settle (and tests drive jobs themselves, with ``force``).
            if not force and at - self._last_run.setdefault(job.name, at) < job.every_s:
                continue
            self._last_run[job.name] = at
            try:
                done[job.name] = await job.run(d.db, d.config, d.texts, self.clock.now())
            except Exception:
                log.exception("job %s failed; trying again in %.0fs", job.name, job.every_s)
        return done

    async def tick(self) -> None:
        await self.sweep_once()
        await self.expire_points_once()
        await self.run_jobs_once()

    def start(self) -> None:
        self._task = every(self.every_s, self.tick, name="sweeper", log=log)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
