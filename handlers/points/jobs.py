"""Points lots past their expiry are expired (one ledger entry each, keyed by the lot, so a
second run changes nothing), and pending lots whose time has come are released."""
from __future__ import annotations

import logging
from datetime import datetime

from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from storage import points
from storage.engine import Database

log = logging.getLogger("siyu.points")


async def expire_and_release(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Expire the lots due now and release the pending ones; how many lots were expired."""
    async with db.transaction() as session:
        expired = await points.expire(session, now=now)
        released = await points.release(session, now=now)
    if expired:
        log.info("expired %d points lot(s)", expired)
    if released:
        log.info("released %d pending points lot(s)", released)
    return expired


def jobs(config: Config) -> list[Job]:
    return [Job("points_expiry", expire_and_release, every_s=5.0, at_start=True)]
