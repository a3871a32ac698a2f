"""The delivery worker: hands committed outbox rows to their channels.

Rows are claimed in batches with a lease (a crashed worker's rows come back when it runs out),
sent through the channel's rate limit with a timeout, and each marked as its send returns
(``bot.settlements``): delivered, rescheduled with exponential backoff and jitter, or failed
with the reason kept on the row. Attempts are bounded; nothing is dropped silently.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.background import finish
from bot.channels.base import Channel, DeliveryError, Held
from bot.clock import Clock
from bot.config import OutboxConfig
from bot.ratelimit import BucketPool, TokenBucket
from bot.settlements import Outcome, Settlements
from storage import outbox, outbox_merge
from storage.engine import Database
from storage.outbox import Claimed

log = logging.getLogger("siyu.outbox")

WAKE_COALESCE_S = 0.02


class OutboxWorker:
    def __init__(self, db: Database, channels: Mapping[str, Channel], *, clock: Clock, config: OutboxConfig) -> None:
        self.db = db
        self.channels = dict(channels)
        self.clock = clock
        self.config = config
        self._buckets = {n: TokenBucket(c.rate_per_s) for n, c in self.channels.items() if c.rate_per_s}
        self._group_buckets = BucketPool(config.group_rate_per_min / 60.0)
        self._in_flight = asyncio.Semaphore(config.concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the earliest wake-up that waits for rows
        self._timer_at = 0.0  # its loop time
        self._stopping = False
        self._settlements = Settlements(db, clock=clock, max_attempts=config.max_attempts)

    def wake(self, at: datetime | None = None) -> None:
        """New rows were committed: deliver now rather than at the next poll, or at ``at``
        when they wait until then (a group digest's window). A pass with nothing due would
        still take SQLite's only writer for its claim, after every commit of a rush."""
        delay = (at - self.clock.now()).total_seconds() if at is not None else 0.0
        if delay <= 0:
            self._wake.set()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        if self._timer is not None and self._timer_at <= deadline:
            return  # an earlier wake-up is set: its pass takes these too if due, else the poll does
        if self._timer is not None:
            self._timer.cancel()
        # The deadline is kept here: uvloop's handles of a delay under a millisecond have no when().
        self._timer, self._timer_at = loop.call_at(deadline, self._ring), deadline

    def _ring(self) -> None:
        self._timer = None
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="siyu-outbox")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the sends under way finish and hand back the pass's rows not yet started (at
        most ``timeout`` seconds), then stop. Rows still claimed after that come back to any
        worker when their lease runs out."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await finish(self._task, timeout)
            self._task = None
        # Stopped: a pass run by hand (tests, a drain) sends again rather than handing back.
        self._stopping = False

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying in %.1fs", self.config.poll_interval_s)
                delivered = 0
            if delivered < self.config.batch_size and not self._stopping:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
                except TimeoutError:
                    pass
                else:
                    # Woken by a commit: let a few more land so one pass takes them together
                    # (each pass takes SQLite's only writer twice).
                    await asyncio.sleep(WAKE_COALESCE_S)

    async def _hand_back(self, rows: list[Claimed]) -> None:
        """Return claimed rows unsent for the next pass; if even that fails, their lease does."""
        try:
            async with self.db.transaction() as session:
                await outbox.release(session, rows)
        except Exception:
            log.exception("outbox: %d claimed message(s) could not be handed back; they come back when their "
                          "lease runs out", len(rows))

    async def deliver_once(self) -> int:
        """Claim one batch of due rows and settle each; return how many were claimed."""
        now = self.clock.now()
        lease = timedelta(seconds=self.config.lease_s)
        async with self.db.transaction() as session:
            batch = await outbox.claim_due(session, now=now, limit=self.config.batch_size, lease=lease)
        if mergeable := outbox_merge.lines_of(batch):
            # Three short transactions rather than one long one: the read of what waits for a
            # digest needs no writer, and SQLite's one writer is what every update waits for
            # (a rush's claim held it 33-47 ms). Nothing is sent before the merge commits; if
            # it fails the claim is handed back, and a crash between leaves the claimed rows
            # to come back when their lease runs out.
            try:
                async with self.db.read() as session:
                    waited = await outbox_merge.waiting(session, mergeable, now=now)
                async with self.db.transaction() as session:
                    batch = await outbox_merge.merge(session, batch, mergeable, waited)
            except Exception:
                await self._hand_back(batch)
                raise
        if not batch:
            return 0
        # A send must end inside the lease: past it another process may claim the row and send it too.
        last_start = now + lease - timedelta(seconds=self.config.send_timeout_s)
        unsent: list[Claimed] = []

        async def settle(message: Claimed) -> None:
            async with self._in_flight:
                # Stopping (SIGTERM): what has not started goes back now, for another process
                # or the next start, rather than waiting out its lease.
                if self._stopping or self.clock.now() >= last_start:
                    unsent.append(message)
                    return
                outcome = await self._send(message)
                # The slot is held until the outcome is committed: sent but unmarked rows (what
                # a kill would send again) never outnumber ``concurrency``.
                await self._settlements.record(message, outcome)

        # Sends to different chats overlap (at most ``concurrency`` in flight), each waiting for
        # its channel's and its group's rate limit; sends to one chat or member go one after
        # another, in order, so a conversation never arrives shuffled.
        lines: dict[tuple[str, str | None, str | None], list[Claimed]] = {}
        for message in batch:
            lines.setdefault((message.channel, message.chat, message.to), []).append(message)

        async def in_order(messages: list[Claimed]) -> None:
            for message in messages:
                await settle(message)

        await asyncio.gather(*(in_order(line) for line in lines.values()))
        if unsent:
            log.info("outbox: %d message(s) not started handed back for the next pass (%s)", len(unsent),
                     "stopping" if self._stopping else "the lease is running out")
            async with self.db.transaction() as session:
                await outbox.release(session, unsent)
        return len(batch)

    async def _send(self, message: Claimed) -> Outcome:
        channel = self.channels.get(message.channel)
        if channel is None:
            return DeliveryError(f"channel {message.channel!r} is not configured in this process", retryable=False)
        if message.chat is not None:
            await self._group_buckets.acquire((message.channel, message.chat))
        if (bucket := self._buckets.get(message.channel)) is not None:
            await bucket.acquire()
        try:
            # A timeout around the send, not ``wait_for``: on Python 3.11 that wraps each send
            # in a task of its own, a turn of the event loop per message delivered.
            async with asyncio.timeout(self.config.send_timeout_s):
                return await channel.send(message)
        except (DeliveryError, Held) as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"no answer within {self.config.send_timeout_s:g}s")
        except Exception as exc:  # a channel bug must not stop delivery of the rest
            log.exception("channel %s raised on message %s", message.channel, message.id)
            return DeliveryError(f"{type(exc).__name__}: {exc}")
