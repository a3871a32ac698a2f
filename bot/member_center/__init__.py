"""会员中心: the members' own pages under /m/ (sign-in, points, mall, votes ...), opened from
link cards in groups. On official WeCom the app hears nothing customers write in groups, so
this is where those members act (DESIGN §3)."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from aiohttp import web

import bot.member_center.auth as auth
import bot.member_center.oauth as oauth
from bot.appkeys import CONFIG
from bot.config import Config
from bot.feature import Feature
from bot.jobs import Job
from bot.links import LINKS
from bot.member_center import uploads
from bot.member_center.config import MEMBER_CENTER
from bot.member_center.links import TARGET
from bot.member_center.routes import TEXT, router
from bot.member_center.web import add_routes
from bot.texts import Texts
from storage import member_sessions, tasks
from storage.engine import Database

SESSIONS_CLEANUP_S = 3600.0
PHOTOS_CLEANUP_S = 3600.0
# A stored photo younger than this may belong to a check-in still being written: kept.
PHOTO_GRACE_S = 3600.0
log = logging.getLogger(__name__)


def _web(app: web.Application) -> None:
    settings = app[CONFIG][MEMBER_CENTER]
    if settings.enabled:
        auth.install(app, settings)
        oauth.install(app)  # WeCom's web authorization, when the WeCom channel is on
        add_routes(app)


async def delete_ended_sessions(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Expired and ended sessions refuse their cookie already: their rows go."""
    async with db.transaction() as s:
        return await member_sessions.delete_ended(s, now=now)


async def delete_unkept_photos(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Photos no check-in names (its member was forgotten with /forget, or the check-in that
    stored it was refused or rolled back) are deleted. Only those older than ``PHOTO_GRACE_S``:
    an upload is stored before the check-in naming it commits."""
    settings = config[MEMBER_CENTER]
    stored = await asyncio.to_thread(uploads.stored_before, settings, now.timestamp() - PHOTO_GRACE_S)
    if not stored:
        return 0
    async with db.read() as s:
        kept = await tasks.photos_kept(s)
    unkept = [name for name in stored if name not in kept]
    for name in unkept:
        await uploads.remove(settings, name)
    if unkept:
        log.info("member center: deleted %d photo(s) no check-in names any more", len(unkept))
    return len(unkept)


def _jobs(config: Config) -> list[Job]:
    if not config[MEMBER_CENTER].enabled:
        return []
    return [Job("member_center_sessions_cleanup", delete_ended_sessions, every_s=SESSIONS_CLEANUP_S),
            Job("member_center_photos_cleanup", delete_unkept_photos, every_s=PHOTOS_CLEANUP_S)]


feature = Feature("member_center", settings=(MEMBER_CENTER,), texts=Feature.texts_beside(__file__), web=_web,
                  jobs=_jobs, checks=(oauth.public_url_set,), hooks={LINKS: TARGET}, link_texts=(TEXT,),
                  routers=lambda config: [router(config)] if config[MEMBER_CENTER].enabled else [])
