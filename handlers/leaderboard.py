"""Leaderboards (排行): "排行" shows this week's (in a group: the group's; one-to-one: overall,
with the member's own place), "排行 月" this month's. A job posts each group's winners when a
week or month has ended (``[leaderboard]``)."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from bot import filters
from bot.config import Config
from bot.context import Context
from bot.jobs import Job
from bot.router import Router
from bot.texts import Texts
from handlers import periods
from storage import broadcasts, community, leaderboards
from storage.engine import Database

log = logging.getLogger("siyu.leaderboard")
router = Router("leaderboard")
ASK = re.compile(r"^(排行|排行榜)\s*(周|本周|月|本月)?$")
# A winners announcement later than this after its time is not posted (stale news): it is
# logged as missed instead.
ANNOUNCE_GRACE = timedelta(days=1)


def lines(texts: Texts, places: list[leaderboards.Place]) -> str:
    return "\n".join(texts("rank_line", rank=p.rank, name=p.name, points=p.points) for p in places)


@router.message(filters.Regex(ASK))
async def show(ctx: Context) -> None:
    match = ASK.match((ctx.update.text or "").strip())
    period = "month" if match and match.group(2) and "月" in match.group(2) else "week"
    label = ctx.texts(f"period_this_{period}")
    since, until = periods.current(period, ctx.now, ctx.config.checkin.timezone)
    group_id = ctx.group.id if ctx.group is not None else None
    places = await leaderboards.top(ctx.session, since=since, until=until, group_id=group_id,
                                    limit=ctx.config.leaderboard.top_n)
    if not places:
        ctx.reply(ctx.texts("rank_empty", period=label))
        return
    header = ctx.texts("rank_header_group" if group_id is not None else "rank_header_all", period=label)
    text = header + "\n" + lines(ctx.texts, places)
    if group_id is None:
        mine = await leaderboards.rank_of(ctx.session, ctx.member.id, since=since, until=until)
        text += "\n" + (ctx.texts("rank_mine", rank=mine[0], points=mine[1]) if mine
                        else ctx.texts("rank_mine_none", period=label))
    ctx.reply(text)


async def announce_winners(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Post each group's top earners of the week / month that ended, once, through the
    broadcast path (quiet hours, caps, WeCom digests and owners' tasks: DESIGN §3, §7).
    Returns the groups it went to."""
    from handlers import fanout

    settings, zone = config.leaderboard, config.checkin.timezone
    posted = 0
    for period, enabled in (("week", settings.announce_weekly), ("month", settings.announce_monthly)):
        start, end = periods.previous(period, now, zone)
        post_at = end + timedelta(hours=settings.announce_hour)
        key = f"winners:{period}:{start.date().isoformat()}"
        if not enabled or now < post_at:
            continue
        async with db.read() as session:
            if await broadcasts.exists(session, key):
                continue
            groups = [g.external_id for g in await community.active_groups(session)
                      if await leaderboards.top(session, since=start, until=end, group_id=g.id, limit=1)]
        late = now > post_at + ANNOUNCE_GRACE
        label = texts(f"period_last_{period}")
        span = f"{start.strftime('%m.%d')}–{(end - timedelta(days=1)).strftime('%m.%d')}"
        # {leaderboard}/{leaderboard_month} are filled per group by the planner, for the
        # period that holds the slot: the one that just ended.
        template = texts("winners", period=label, span=span,
                         lines="{leaderboard}" if period == "week" else "{leaderboard_month}")
        async with db.transaction() as session:
            broadcast_id = await broadcasts.create(
                session, key=key, source="job", slot=end - timedelta(microseconds=1), template=template,
                target={"groups": groups}, status=broadcasts.MISSED if late and groups else broadcasts.PLANNED,
                created_by="system:winners", now=now,
                reason="siyu was not running when it was due" if late else None if groups else "nobody earned points")
            if broadcast_id is None:
                continue  # another process got there first
            if late and groups:
                log.warning("winners of the %s from %s not posted: due at %s, siyu was not running then",
                            period, start.date(), post_at.isoformat())
            if late or not groups:
                continue
            planned = await fanout.plan(session, config, texts, broadcast_id, now=now)
        posted += planned.groups
        log.info("winners of the %s from %s: to %d group(s)", period, start.date(), planned.groups)
    return posted


def jobs(config: Config) -> list[Job]:
    return [Job("winners", announce_winners, every_s=60.0)]
