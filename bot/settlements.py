"""Settling outbox rows as their sends return.

A row is marked (delivered, retried, failed, held, handed to a group owner) as soon as its
send returns, not when the whole pass ends: a process killed mid-pass (SIGKILL, OOM, power)
then sends again at most the rows whose sends were in flight at that instant. Outcomes that
return while a mark is being written share the next transaction (a group commit), so a pass of
instant sends still takes the database's writer a few times, not once per row.
"""
from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from bot.channels.base import DeliveryError, HandedToOwner, Held, ProbablyDelivered
from bot.clock import Clock
from storage import broadcasts, outbox
from storage.engine import Database, is_transient
from storage.outbox import Claimed

log = logging.getLogger("siyu.outbox")

Outcome = DeliveryError | HandedToOwner | Held | ProbablyDelivered | None

# A mark met by a busy database is tried again after these pauses; after them the rows stay
# claimed and come back when their lease runs out (sent again: the one case a mark is lost).
BUSY_PAUSES_S = (0.05, 0.2, 0.5)
MAX_BACKOFF_S = 300.0


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: 2, 4, 8 ... up to 5 minutes, with ±25% jitter."""
    return min(MAX_BACKOFF_S, 2.0 ** attempts) * random.uniform(0.75, 1.25)


class Settlements:
    """Writes each send's outcome soon after it returns, several in one transaction."""

    def __init__(self, db: Database, *, clock: Clock, max_attempts: int) -> None:
        self.db = db
        self.clock = clock
        self.max_attempts = max_attempts
        self._pending: list[tuple[Claimed, Outcome]] = []
        self._batch: asyncio.Future[bool] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def record(self, message: Claimed, outcome: Outcome) -> bool:
        """Mark the row with its send's outcome; returns once that is committed (False if the
        database would not take it: the row then comes back when its lease runs out)."""
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        self._pending.append((message, outcome))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="siyu-outbox-marks")
        # Shielded: a pass cancelled while waiting must not cancel the others' marks.
        return await asyncio.shield(batch)

    async def _write_all(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                batch, self._batch = self._batch, None
                written = await self._write(items)
                if batch is not None and not batch.done():
                    batch.set_result(written)
        finally:
            self._writer = None

    async def _write(self, items: list[tuple[Claimed, Outcome]]) -> bool:
        for pause in (*BUSY_PAUSES_S, None):
            try:
                await self._commit(items)
                return True
            except Exception as exc:
                if pause is None or not is_transient(exc):
                    log.exception("outbox: could not mark %d sent message(s) %s; they are sent again when "
                                  "their lease runs out", len(items), [m.id for m, _ in items][:10])
                    return False
                await asyncio.sleep(pause)
        return False  # unreachable: the last pause is None

    async def _commit(self, items: list[tuple[Claimed, Outcome]]) -> None:
        now = self.clock.now()
        delivered: list[Claimed] = []
        handed: list[tuple[Claimed, HandedToOwner]] = []
        failed: list[tuple[Claimed, str]] = []
        async with self.db.transaction() as session:
            for message, outcome in items:
                if outcome is None or isinstance(outcome, ProbablyDelivered):
                    delivered.append(message)
                elif isinstance(outcome, Held):
                    await outbox.mark_held(session, message, reason=outcome.reason)
                elif isinstance(outcome, HandedToOwner):
                    handed.append((message, outcome))
                    await outbox.mark_awaiting_owner(session, message, now=now, meta={**message.meta, **outcome.meta})
                elif not outcome.retryable or message.attempts >= self.max_attempts:
                    failed.append((message, outcome.reason))
                    await outbox.mark_failed(session, message, error=outcome.reason)
                else:
                    delay = outcome.retry_after if outcome.retry_after is not None else backoff(message.attempts)
                    await outbox.mark_retry(session, message, error=outcome.reason,
                                            not_before=now + timedelta(seconds=delay))
            await outbox.mark_delivered(session, delivered, now=now)
            for message, outcome in items:
                if isinstance(outcome, ProbablyDelivered):
                    await outbox.note(session, message.id, outcome.reason)
            await broadcasts.mirror(session, [m.id for m in delivered], broadcasts.DELIVERED, now=now)
            await broadcasts.mirror(session, [m.id for m, _ in handed], broadcasts.AWAITING_OWNER, now=now)
            for message, reason in failed:
                await broadcasts.mirror(session, [message.id], broadcasts.FAILED, now=now, reason=reason)
        # Logged once committed: the log says what the database says.
        for message, outcome in items:
            if isinstance(outcome, Held):
                log.warning("outbox message %s to %s held: %s", message.id, message.to or message.chat, outcome.reason)
            elif isinstance(outcome, ProbablyDelivered):
                log.warning("outbox message %s to %s probably delivered: %s", message.id, message.to or message.chat,
                            outcome.reason)
            elif isinstance(outcome, HandedToOwner):
                log.info("outbox message %s to %s awaits its group owner's confirmation", message.id,
                         message.chat or message.meta.get("chat_ids"))
        for message, reason in failed:
            log.warning("outbox message %s to %s gave up after %d attempt(s): %s",
                        message.id, message.chat or message.to, message.attempts, reason)
