"""The aiohttp application: wires config, database, dispatcher, channels and the outbox worker."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from bot import api, console, metrics
from bot.appkeys import CHANNELS, CONFIG, DB, DISPATCHER, OUTBOX, SCHEDULER, SWEEPER
from bot.channels.base import Channel
from bot.channels.sandbox import SandboxChannel
from bot.clock import Clock, SystemClock
from bot.config import Config, RewardConfig
from bot.context import Context
from bot.dispatcher import Dispatcher
from bot.http import MAX_BODY_BYTES, json_error, json_errors, json_response
from bot.outbox import OutboxWorker
from bot.router import Router
from bot.scheduler import PlaybookScheduler
from bot.sweeper import DeadlineSweeper
from flows.engine import Flow
from flows.runner import FlowEngine
from bot.texts import Texts
from storage import rewards, roles, task_definitions
from storage.engine import Database
from storage.migrate import upgrade

log = logging.getLogger("siyu.app")


def build_channels(config: Config, clock: Clock) -> list[Channel]:
    channels: list[Channel] = []
    if config.sandbox.enabled:
        channels.append(SandboxChannel(config.sandbox))
    if config.wecom.enabled:
        from bot.channels.wecom.channel import WeComChannel

        wecom = WeComChannel(config.wecom, clock)
        channels.append(wecom)
        if config.wecom.kf:
            from bot.channels.wecom.kf import KfChannel

            wecom.kf_channel = KfChannel(wecom, clock)
            channels.append(wecom.kf_channel)
    if config.bridge.enabled:
        from bot.channels.bridge import BridgeChannel

        channels.append(BridgeChannel(config.bridge, clock))
    if config.robot.enabled:
        from bot.channels.robot import RobotChannel

        channels.append(RobotChannel(config.robot))
    return channels


async def stored_role(ctx: Context) -> str:
    """The sender's role from the database (``storage.roles``): a change takes effect at once."""
    return await roles.role_of(ctx.session, ctx.update.channel, ctx.update.sender)


def reward_spec(reward: RewardConfig) -> rewards.RewardSpec:
    return rewards.RewardSpec(reward.name, reward.cost, reward.stock, reward.per_member_limit, reward.min_level,
                              reward.starts_at, reward.ends_at, reward.approval, tuple(reward.codes))


def create_app(
    config: Config, *, clock: Clock | None = None, routers: Iterable[Router] | None = None,
    flow_definitions: Iterable[Flow] | None = None,
) -> web.Application:
    """Build the app. On startup it migrates the database (as ``siyu db upgrade``) and starts
    delivering; ``routers`` replace the shipped handlers (``handlers.default_routers()``) and
    ``flow_definitions`` the shipped flows (``flows.default_flows()``)."""
    clock = clock or SystemClock()
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    channels = build_channels(config, clock)
    app[CHANNELS] = {c.name: c for c in channels}
    for channel in channels:
        channel.add_routes(app)
    app.router.add_get("/healthz", healthz)
    if config.metrics.enabled:
        app.router.add_get("/metrics", metrics.serve)
    if config.api.enabled:
        api.add_routes(app)
    if config.console.enabled:
        console.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Alembic runs on a sync engine: in a thread, so the loop keeps serving.
        await asyncio.to_thread(upgrade, config.storage.url)
        db = Database(config.storage.url, echo=config.storage.echo)
        async with db.transaction() as session:
            await rewards.ensure(session, [reward_spec(r) for r in config.rewards], now=clock.now())
            await roles.seed_admins(session, config.operators.admins, now=clock.now())
            await task_definitions.ensure(session, [t.model_dump() for t in config.tasks])
        from flows import default_flows
        from handlers import default_jobs, default_middlewares, default_routers

        dispatcher = Dispatcher(
            db, clock=clock, texts=Texts(config.texts), config=config, role_of=stored_role,
            lanes=config.storage.write_lanes,
        )
        dispatcher.include_routers(routers if routers is not None else default_routers(config))
        for middleware in default_middlewares(config):
            dispatcher.middleware(middleware)
        dispatcher.flows = FlowEngine(flow_definitions if flow_definitions is not None else default_flows(config))
        sweeper = DeadlineSweeper(dispatcher, clock, jobs=default_jobs(config))
        worker = OutboxWorker(db, {c.name: c for c in channels}, clock=clock, config=config.outbox)
        dispatcher.on_commit(lambda result: worker.wake() if result.replies else None)
        scheduler = PlaybookScheduler(db, config, dispatcher.texts, clock) if config.scheduler.enabled else None
        app[DB], app[DISPATCHER], app[OUTBOX], app[SWEEPER] = db, dispatcher, worker, sweeper
        app[SCHEDULER] = scheduler
        for channel in channels:
            await channel.start(app)
        worker.start()
        sweeper.start()
        if scheduler is not None:
            scheduler.start()
        log.info("siyu ready: channels %s, database %s", ", ".join(c.name for c in channels) or "none", db.dialect)
        try:
            yield
        finally:
            # The worker sends through the channels: it stops first. What handling still
            # queues is stored and delivered after the next start.
            if scheduler is not None:
                await scheduler.stop()
            await sweeper.stop()
            await worker.stop()
            for channel in channels:
                await channel.stop()
            await dispatcher.close()
            await db.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[DB].ping()
    except Exception as exc:
        log.warning("health check: database unreachable: %s", exc)
        return json_error(503, "database unreachable")
    return json_response({"status": "ok"})
