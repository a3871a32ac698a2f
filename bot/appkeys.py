"""Typed keys for what the aiohttp application carries."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.config import Config
    from bot.dispatcher import Dispatcher
    from bot.jobs import JobRunner
    from bot.outbox import OutboxWorker
    from storage.engine import Database

CONFIG: web.AppKey[Config] = web.AppKey("config")
DB: web.AppKey[Database] = web.AppKey("db")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
OUTBOX: web.AppKey[OutboxWorker] = web.AppKey("outbox")
CHANNELS: web.AppKey[dict[str, Channel]] = web.AppKey("channels")
JOBS: web.AppKey[JobRunner] = web.AppKey("jobs")
