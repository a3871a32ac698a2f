"""The sweeper: what is due by the clock rather than by a message.

- Passed flow deadlines become ``flow_deadline`` updates with a key made of the member, the flow
  and the row's version, fed through the dispatcher like any message: so each runs under the
  member's lock, in a transaction, and, deduplicated by that key, fires once even if two
  processes or a restart sweep it again.
- Points lots past their expiry are expired (one ledger entry each, keyed by the lot, so a
  second sweep changes nothing).
"""
from __future__ import annotations

import asyncio
import logging

from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.update import FLOW_DEADLINE, Update
from storage import flows, points

log = logging.getLogger("siyu.sweeper")

SWEEP_EVERY_S = 5.0


class DeadlineSweeper:
    def __init__(self, dispatcher: Dispatcher, clock: Clock, *, every_s: float = SWEEP_EVERY_S) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.every_s = every_s
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
        async with self.dispatcher.db.transaction() as session:
            expired = await points.expire(session, now=self.clock.now())
        if expired:
            log.info("expired %d points lot(s)", expired)
        return expired

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="siyu-deadline-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
                await self.expire_points_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; trying again in %.0fs", self.every_s)
            await asyncio.sleep(self.every_s)
