"""Background tasks that stop gracefully."""
from __future__ import annotations

import asyncio


async def finish(task: asyncio.Task[None], timeout: float) -> None:
    """Let ``task`` end by itself within ``timeout`` seconds (it was told to stop), else cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except asyncio.TimeoutError:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
