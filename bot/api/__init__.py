"""The REST API: JSON under /api/ for the brand's CRM and other systems, documented by the
OpenAPI file it serves at /api/openapi.json.

Bearer tokens come from ``[api] tokens``, each with a role; endpoints need a role as chat
commands do (viewer reads, operator changes, admin reads the audit trail). Errors are
``{"error": {"code", "message"}}``: 401 without a valid token, 403 for a role too low, 400 for
a body that is not JSON, 422 for one that breaks the schema, 404 and 409 as they fit; nothing a
client sends causes a 5xx. Members are addressed by the id their channel knows them by.
Every POST takes an ``Idempotency-Key``: a repeat gets the first answer instead of a second change.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aiohttp import web

from bot.api import catalog, community, handovers, members, tasks
from bot.api.base import api_errors
from bot.api.config import API
from bot.appkeys import CONFIG
from bot.config import Config
from bot.feature import Feature
from bot.jobs import Job
from bot.texts import Texts
from storage import idempotency
from storage.engine import Database

OPENAPI = Path(__file__).with_name("openapi.json")


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.middlewares.append(api_errors)
    app.router.add_get("/api/openapi.json", openapi)
    for module in (members, catalog, community, tasks, handovers):
        module.add_routes(app.router)


def _web(app: web.Application) -> None:
    if app[CONFIG][API].enabled:
        add_routes(app)


async def prune_keys(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Drop the Idempotency-Keys older than their retention; how many. Any process may run it:
    a second run finds nothing left to drop."""
    async with db.transaction() as session:
        return await idempotency.prune(session, before=now - idempotency.RETENTION)


def _jobs(config: Config) -> list[Job]:
    return [Job("api_idempotency_keys", prune_keys, every_s=3600.0)] if config[API].enabled else []


# The REST API is a web surface registered like a feature: its section, its routes, its job.
feature = Feature("api", settings=(API,), texts=Feature.texts_beside(__file__), web=_web, jobs=_jobs)
