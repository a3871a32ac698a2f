"""How updates reach their transaction: batched (group commit), in one lane or several.

Every statement costs a round trip (on SQLite a thread hop through aiosqlite, on PostgreSQL a
network one and a WAL flush per commit), so updates waiting at the same moment are committed
together in one transaction, one multi-row statement per table (group commit, DESIGN §9). An
update that arrives while a batch is being written joins the next batch, so under no load a
batch is one update and nothing waits.

SQLite has one writer: one lane. PostgreSQL takes concurrent writers: updates are spread over
several lanes by member, so a slow update holds up only its own lane, and since a member always
lands in the same lane, two lanes never lock the same member's row.
"""
from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bot.background import finish

T = TypeVar("T")
R = TypeVar("R")

Process = Callable[[Sequence[T]], Awaitable[list[R]]]


class GroupCommit(Generic[T, R]):
    """Items submitted while a batch is being processed are processed together next.

    ``max_batch`` bounds a batch (its statements and the wait of its first item).
    """

    def __init__(self, process: Process[T, R], *, max_batch: int = 64) -> None:
        self._process = process
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def submit(self, item: T) -> R:
        if self._closing:
            raise RuntimeError("shutting down: no new work is taken")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="siyu-group-commit")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._ready.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if self._closing and not self._queue:
                return
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            if not self._queue:
                self._ready.clear()
            if not batch:
                continue
            try:
                results = await self._process([item for item, _ in batch])
            except BaseException as exc:  # the caller of each item hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self, timeout: float = 10.0) -> None:
        """Finish what was submitted (at most ``timeout`` seconds), then stop."""
        self._closing = True
        if self._task is not None:
            self._ready.set()
            await finish(self._task, timeout)
            self._task = None
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()


class Lanes(Generic[T, R]):
    """``lanes`` group-commit lanes; an item goes to the lane its key hashes to (stable across
    processes and restarts, unlike ``hash``)."""

    def __init__(self, process: Process[T, R], *, lanes: int, key: Callable[[T], str], max_batch: int = 64) -> None:
        if lanes < 1:
            raise ValueError("at least one lane")
        self._lanes = [GroupCommit(process, max_batch=max_batch) for _ in range(lanes)]
        self._key = key

    def lane_of(self, key: str) -> int:
        return zlib.crc32(key.encode()) % len(self._lanes)

    async def submit(self, item: T) -> R:
        return await self._lanes[self.lane_of(self._key(item))].submit(item)

    async def close(self, timeout: float = 10.0) -> None:
        await asyncio.gather(*(lane.close(timeout) for lane in self._lanes))
