"""Each group's winners, posted once when a week or month has ended (``[leaderboard]``), through
the broadcast path: quiet hours, caps, WeCom digests and owners' tasks (DESIGN §3, §7)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot import periods
from bot.config import Config
from bot.texts import Texts
from handlers.broadcasts.services import plan
from handlers.leaderboard.config import LEADERBOARD
from storage import broadcasts, community, leaderboards, once
from storage.engine import Database

log = logging.getLogger("siyu.leaderboard")
# A winners announcement later than this after its time is not posted (stale news): it is
# logged as missed instead.
ANNOUNCE_GRACE = timedelta(days=1)
SOURCE = "winners"  # the broadcasts' source (its label: the text broadcast_source_winners)


async def announce_winners(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Post each group's top earners of the week / month that ended, once, through the
    broadcast path (quiet hours, caps, WeCom digests and owners' tasks: DESIGN §3, §7).
    Returns the groups it went to."""
    settings, zone = config[LEADERBOARD], config.zone
    posted = 0
    for period, enabled in (("week", settings.announce_weekly), ("month", settings.announce_monthly)):
        start, end = periods.previous(period, now, zone)
        post_at = end + timedelta(hours=settings.announce_hour)
        key = f"winners:{period}:{start.date().isoformat()}"
        if not enabled or now < post_at:
            continue
        async with db.read() as session:
            if await broadcasts.exists(session, key) or await once.claimed(session, key):
                continue
            groups = [g.external_id for g in await community.active_groups(session)
                      if await leaderboards.top(session, since=start, until=end, group_id=g.id, limit=1)]
        if not groups:
            # Nobody earned points: nothing to announce, and no empty broadcast in the operators'
            # list. The key remembers it was checked (the period has ended: it stays so).
            async with db.transaction() as session:
                await once.claim(session, key, now=now)
            continue
        late = now > post_at + ANNOUNCE_GRACE
        label = texts(f"period_last_{period}")
        span = f"{start.strftime('%m.%d')}–{(end - timedelta(days=1)).strftime('%m.%d')}"
        # {leaderboard}/{leaderboard_month} are filled per group by the planner, for the
        # period that holds the slot: the one that just ended.
        template = texts("winners", period=label, span=span,
                         lines="{leaderboard}" if period == "week" else "{leaderboard_month}")
        async with db.transaction() as session:
            broadcast_id = await broadcasts.create(
                session, key=key, source=SOURCE, slot=end - timedelta(microseconds=1), template=template,
                target={"groups": groups}, status=broadcasts.MISSED if late else broadcasts.PLANNED,
                created_by="system:winners", now=now, reason="siyu was not running when it was due" if late else None)
            if broadcast_id is None:
                continue  # another process got there first
            if late:
                log.warning("winners of the %s from %s not posted: due at %s, siyu was not running then",
                            period, start.date(), post_at.isoformat())
                continue
            planned = await plan(session, config, texts, broadcast_id, now=now)
        posted += planned.groups
        log.info("winners of the %s from %s: to %d group(s)", period, start.date(), planned.groups)
    return posted
