"""Scheduled topics and broadcasts: playbooks (SOP) planned by the scheduler, operators'
``/broadcast``, quiet hours and caps, WeCom customer groups' daily digests packed into owner
tasks, and each broadcast's outcome reported to the operator who started it (DESIGN §7)."""
from __future__ import annotations

from collections.abc import AsyncIterator

from bot.channels.base import Capability
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.feature import Feature
from bot.jobs import Job
from handlers.broadcasts import digests, flow, status
from handlers.broadcasts.commands import router
from handlers.broadcasts.config import BROADCASTS, PLAYBOOKS, SCHEDULER, member_center_set
from handlers.broadcasts.scheduler import PlaybookScheduler


def jobs(config: Config) -> list[Job]:
    found = [Job("broadcast_reports", status.report_finished, every_s=30.0)]
    # Digests are packed only where a channel reaches groups through their owners (WeCom).
    if any(kind.enabled(config) and any(Capability.SEND_OWNER_TASK in can for can in kind.capabilities.values())
           for kind in config.channels):
        found.append(Job("owner_tasks", digests.pack_owner_tasks, every_s=30.0))
    return found


async def lifespan(dispatcher: Dispatcher) -> AsyncIterator[None]:
    """The scheduler runs while the app runs (in the one process elected to lead it)."""
    if not dispatcher.config[SCHEDULER].enabled:
        yield
        return
    scheduler = PlaybookScheduler(dispatcher.db, dispatcher.config, dispatcher.texts, dispatcher.clock)
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


feature = Feature("broadcasts", settings=(SCHEDULER, PLAYBOOKS, BROADCASTS), texts=Feature.texts_beside(__file__),
                  routers=lambda config: [router], flows=lambda config: [flow.build(config)], jobs=jobs,
                  lifespan=lifespan, checks=(member_center_set,))
