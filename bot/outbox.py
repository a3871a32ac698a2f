"""The delivery worker: hands committed outbox rows to their channels.

Rows are claimed in batches with a lease (a crashed worker's rows come back when it runs out),
sent through the channel's rate limit with a timeout, then marked delivered, rescheduled with
exponential backoff and jitter, or failed with the reason kept on the row. Attempts are
bounded; nothing is dropped silently.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import timedelta

from bot.channels.base import Channel, DeliveryError
from bot.clock import Clock
from bot.config import OutboxConfig
from bot.ratelimit import TokenBucket
from storage import outbox
from storage.engine import Database
from storage.outbox import Claimed

log = logging.getLogger("siyu.outbox")

MAX_BACKOFF_S = 300.0


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: 2, 4, 8 ... up to 5 minutes, with ±25% jitter."""
    return min(MAX_BACKOFF_S, 2.0 ** attempts) * random.uniform(0.75, 1.25)


class OutboxWorker:
    def __init__(self, db: Database, channels: Mapping[str, Channel], *, clock: Clock, config: OutboxConfig) -> None:
        self.db = db
        self.channels = dict(channels)
        self.clock = clock
        self.config = config
        self._buckets = {n: TokenBucket(c.rate_per_s) for n, c in self.channels.items() if c.rate_per_s}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were committed: deliver now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="siyu-outbox")

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
                delivered = await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying in %.1fs", self.config.poll_interval_s)
                delivered = 0
            if delivered < self.config.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
                except asyncio.TimeoutError:
                    pass

    async def deliver_once(self) -> int:
        """Claim one batch of due rows and settle each; return how many were claimed."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            batch = await outbox.claim_due(
                session, now=now, limit=self.config.batch_size, lease=timedelta(seconds=self.config.lease_s),
            )
        if not batch:
            return 0
        delivered: list[int] = []
        retries: list[tuple[int, str, float]] = []
        failures: list[tuple[int, str]] = []
        for message in batch:
            error = await self._send(message)
            if error is None:
                delivered.append(message.id)
            elif not error.retryable or message.attempts >= self.config.max_attempts:
                failures.append((message.id, error.reason))
                log.warning("outbox message %s to %s gave up after %d attempt(s): %s",
                            message.id, message.chat or message.to, message.attempts, error.reason)
            else:
                retries.append((message.id, error.reason, error.retry_after or backoff(message.attempts)))
        now = self.clock.now()
        async with self.db.transaction() as session:
            await outbox.mark_delivered(session, delivered, now=now)
            for id_, reason, delay in retries:
                await outbox.mark_retry(session, id_, error=reason, not_before=now + timedelta(seconds=delay))
            for id_, reason in failures:
                await outbox.mark_failed(session, id_, error=reason)
        return len(batch)

    async def _send(self, message: Claimed) -> DeliveryError | None:
        channel = self.channels.get(message.channel)
        if channel is None:
            return DeliveryError(f"channel {message.channel!r} is not configured in this process", retryable=False)
        if (bucket := self._buckets.get(message.channel)) is not None:
            await bucket.acquire()
        try:
            await asyncio.wait_for(channel.send(message), self.config.send_timeout_s)
        except DeliveryError as exc:
            return exc
        except asyncio.TimeoutError:
            return DeliveryError(f"no answer within {self.config.send_timeout_s:g}s")
        except Exception as exc:  # a channel bug must not stop delivery of the rest
            log.exception("channel %s raised on message %s", message.channel, message.id)
            return DeliveryError(f"{type(exc).__name__}: {exc}")
        return None
