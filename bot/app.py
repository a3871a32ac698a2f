"""The aiohttp application, built from a config and what that config's siyu is made of: its
channels and features (``type(config).channels`` / ``.features``, set by ``bot.builtin``)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from bot import metrics
from bot.appkeys import CHANNELS, CONFIG, DB, DISPATCHER, JOBS, OUTBOX
from bot.channels.base import Channel
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.context import Context
from bot.dispatcher import Dispatcher
from bot.http import MAX_BODY_BYTES, json_error, json_errors, json_response, refuse_compressed
from bot.jobs import JobRunner
from bot.outbox import OutboxWorker
from bot.texts import Texts
from flows.runner import FlowEngine
from storage import roles
from storage.engine import Database
from storage.migrate import upgrade

log = logging.getLogger("siyu.app")


async def stored_role(ctx: Context) -> str:
    """The sender's role from the database (``storage.roles``): a change takes effect at once."""
    return await roles.role_of(ctx.session, ctx.update.channel, ctx.update.sender)


def create_app(config: Config, *, clock: Clock | None = None) -> web.Application:
    """Build the app. On startup it migrates the database (as ``siyu db upgrade``), builds the
    dispatcher from the features' routers, middlewares and flows, starts the channels, the
    outbox worker and the job runner, then the features' lifespans."""
    clock = clock or SystemClock()
    features = type(config).features
    # Bodies are read as they come: a compressed one is refused, never inflated (refuse_compressed).
    app = web.Application(middlewares=[refuse_compressed, json_errors], client_max_size=MAX_BODY_BYTES,
                          handler_args={"auto_decompress": False})
    app[CONFIG] = config
    channels: list[Channel] = [c for kind in type(config).channels for c in kind.build(config, clock)]
    app[CHANNELS] = {c.name: c for c in channels}
    for channel in channels:
        channel.add_routes(app)
    app.router.add_get("/healthz", healthz)
    if config.metrics.enabled:
        app.router.add_get("/metrics", metrics.serve)
    for feature in features:
        if feature.web is not None:
            feature.web(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        for note in config.deprecations:
            log.warning("config: %s", note)
        # Alembic runs on a sync engine: in a thread, so the loop keeps serving.
        await asyncio.to_thread(upgrade, config.storage.url)
        db = Database(config.storage.url, echo=config.storage.echo)
        async with db.transaction() as session:
            # [operators] admins are admins, each on its channel, again at every start.
            await roles.seed_admins(session, config.operators.identities(), now=clock.now())
        dispatcher = Dispatcher(
            db, clock=clock, texts=Texts(config.texts), config=config, role_of=stored_role,
            lanes=config.storage.write_lanes,
        )
        for feature in features:
            dispatcher.include_routers(feature.routers(config))
            for middleware in feature.middlewares(config):
                dispatcher.middleware(middleware)
        dispatcher.flows = FlowEngine(flow for feature in features for flow in feature.flows(config))
        worker = OutboxWorker(db, {c.name: c for c in channels}, clock=clock, config=config.outbox)
        dispatcher.on_commit(lambda result: worker.wake(at=result.due) if result.replies else None)
        app[DB], app[DISPATCHER], app[OUTBOX] = db, dispatcher, worker
        async with AsyncExitStack() as running:
            for channel in channels:
                await channel.start(app)
            jobs = JobRunner(dispatcher, clock, [job for feature in features for job in feature.jobs(config)]
                             + [job for channel in channels for job in channel.jobs()])
            app[JOBS] = jobs
            worker.start()
            jobs.start()
            # Feature lifespans stop first (in reverse), then the jobs, the worker (it sends
            # through the channels), the channels: what handling still queues is stored and
            # delivered after the next start.
            running.push_async_callback(_stop, db, dispatcher, worker, jobs, channels)
            for feature in features:
                if feature.lifespan is not None:
                    await running.enter_async_context(asynccontextmanager(feature.lifespan)(dispatcher))
            log.info("siyu ready: channels %s, database %s", ", ".join(c.name for c in channels) or "none", db.dialect)
            yield

    app.cleanup_ctx.append(lifecycle)
    return app


async def _stop(db: Database, dispatcher: Dispatcher, worker: OutboxWorker, jobs: JobRunner,
                channels: list[Channel]) -> None:
    await jobs.stop()
    await worker.stop()
    for channel in channels:
        await channel.stop()
    await dispatcher.close()
    await db.dispose()


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[DB].ping()
    except Exception as exc:
        log.warning("health check: database unreachable: %s", exc)
        return json_error(503, "database unreachable")
    return json_response({"status": "ok"})
