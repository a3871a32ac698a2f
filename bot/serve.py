"""Serving the app until SIGTERM or SIGINT, then stopping it gracefully.

aiohttp's ``run_app`` stops by raising out of the loop and cancelling its main task, so the
app's cleanup (the outbox's last pass settling its rows, the scheduler stepping down) runs in a
cancelled task, followed by the cancellation of every task still alive. Here the signal only
sets an event: the cleanup runs as ordinary code, to its end, and the process says when it
stops.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

log = logging.getLogger("siyu.serve")
SHUTDOWN_TIMEOUT_S = 10.0  # requests under way get this long to finish after a stop signal


async def serve(app: web.Application, host: str, port: int, *, ready_message: str) -> None:
    """Serve ``app`` on ``host:port``; on SIGTERM or SIGINT stop accepting, let requests under
    way finish (at most ``SHUTDOWN_TIMEOUT_S``), run the app's cleanup, and return."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # Windows: Ctrl-C raises KeyboardInterrupt instead
            pass
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        # What startup built (modules, the ORM's tables, routes, texts: ~160,000 objects) lives
        # as long as the process: kept out of the collector's full passes, each of which walked
        # it all and held the event loop ~100 ms (measured with gc.callbacks).
        gc.freeze()
        print(ready_message, flush=True)
        await stop.wait()
        log.info("stopping: no new connections; finishing what is under way")
    finally:
        await runner.cleanup()
    log.info("stopped")
