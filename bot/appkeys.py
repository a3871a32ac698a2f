"""Typed keys for what the aiohttp application carries."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.config import Config
    from bot.dispatcher import Dispatcher
    from bot.outbox import OutboxWorker
    from bot.scheduler import PlaybookScheduler
    from bot.sweeper import DeadlineSweeper
    from storage.engine import Database

CONFIG: web.AppKey["Config"] = web.AppKey("config")
DB: web.AppKey["Database"] = web.AppKey("db")
DISPATCHER: web.AppKey["Dispatcher"] = web.AppKey("dispatcher")
OUTBOX: web.AppKey["OutboxWorker"] = web.AppKey("outbox")
CHANNELS: web.AppKey[dict[str, "Channel"]] = web.AppKey("channels")
SWEEPER: web.AppKey["DeadlineSweeper"] = web.AppKey("sweeper")
# None when [scheduler] enabled = false.
SCHEDULER: web.AppKey["PlaybookScheduler | None"] = web.AppKey("scheduler")
