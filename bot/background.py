"""Background tasks that stop gracefully."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def finish(task: asyncio.Task[None], timeout: float) -> None:
    """Let ``task`` end by itself within ``timeout`` seconds (it was told to stop), else cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def every(seconds: float, work: Callable[[], Awaitable[object]], *, name: str,
          log: logging.Logger) -> asyncio.Task[None]:
    """Run ``work()`` every ``seconds`` until cancelled. A failure is logged and tried again at
    the next round: one bad round never stops the loop."""

    async def loop() -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again in %.0fs", name, seconds)
            await asyncio.sleep(seconds)

    return asyncio.create_task(loop(), name=f"siyu-{name}")
