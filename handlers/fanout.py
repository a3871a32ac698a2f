"""Fan-out: a broadcast becomes one delivery per target group (DESIGN §7).

Planning renders the text for each group, moves it out of quiet hours and into the playbook's
window, counts the per-group daily cap, and follows what the group's channel can do (DESIGN §3):
a channel that posts in groups gets an outbox row per group at once; a channel that only makes
owner-confirmed tasks (WeCom customer groups) keeps the delivery planned for the day's digest,
which ``pack_group_tasks`` merges per group, checks against the quota ledger and packs into one
task per owner (at most 2,000 groups each). The broadcast's unique key and the deliveries'
(broadcast, group) key make all of it happen once.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels import Capability, capabilities
from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from handlers import periods
from handlers.leaderboard import lines as leaderboard_lines
from handlers.timing import WEEKDAYS, allowed_at, digest_time
from storage import advisory, broadcasts, leaderboards, outbox
from storage.broadcast_models import Delivery
from storage.engine import Database
from storage.models import Group

log = logging.getLogger("siyu.fanout")
# Planning against the per-group daily cap and packing against WeCom's group quota.
QUOTA_LOCK = "siyu:group-quota"
PLACEHOLDER = re.compile(r"\{(group|date|weekday|task|leaderboard|leaderboard_month)\}")
# add_msg_template takes at most 2,000 chat ids (wecom.md §3.5).
TASK_GROUPS_MAX = 2000


@dataclass
class Planned:
    groups: int = 0
    queued: int = 0  # outbox rows written (direct channels)
    waiting: int = 0  # kept for the digest / owners' tasks
    skipped: Counter[str] = field(default_factory=Counter)


def render(template: str, values: dict[str, str]) -> str:
    """Fill the known placeholders only: an operator's text may hold any braces."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def day_values(config: Config, slot: datetime, tasks: list[str]) -> dict[str, str]:
    """{date}, {weekday} and {task} of the slot's local day."""
    local = slot.astimezone(ZoneInfo(config.checkin.timezone))
    return {"date": local.strftime("%m月%d日"), "weekday": WEEKDAYS[local.weekday()],
            "task": tasks[local.date().toordinal() % len(tasks)] if tasks else ""}


async def _values(session: AsyncSession, config: Config, texts: Texts, template: str, group: Group,
                  slot: datetime, tasks: list[str]) -> dict[str, str]:
    zone = config.checkin.timezone
    values = {"group": group.name or texts("group_name_unknown"), **day_values(config, slot, tasks)}
    for name, period in (("leaderboard", "week"), ("leaderboard_month", "month")):
        if "{" + name + "}" in template:
            since, until = periods.current(period, slot, zone)
            places = await leaderboards.top(session, since=since, until=until, group_id=group.id,
                                            limit=config.leaderboard.top_n)
            values[name] = (leaderboard_lines(texts, places) if places
                            else texts("rank_empty", period=texts(f"period_this_{period}")))
    return values


async def plan(session: AsyncSession, config: Config, texts: Texts, broadcast_id: int, *, now: datetime) -> Planned:
    """Write the deliveries of a planned broadcast (in the caller's transaction)."""
    # One planner at a time across processes: the per-group daily cap counted below must
    # include what another process is planning at this moment.
    await advisory.lock(session, QUOTA_LOCK)
    b = await broadcasts.get(session, broadcast_id)
    if b is None or b.status != broadcasts.PLANNED:
        raise ValueError(f"broadcast {broadcast_id} is not planned")
    playbook = next((p for p in config.sop if p.name == b.playbook), None)
    zone, settings = config.checkin.timezone, config.scheduler
    start = allowed_at(max(b.slot, now), zone, quiet=settings.quiet_hours, window=playbook.window if playbook else [])
    groups = await broadcasts.targets(session, b.target)
    day, day_end = periods.day_of(b.slot, zone)
    counted = await broadcasts.counted_since(session, [g.id for g in groups], day, day_end)
    result = Planned(groups=len(groups))
    rows: list[broadcasts.NewDelivery] = []
    for group in groups:
        text = render(b.template, await _values(session, config, texts, b.template, group, b.slot,
                                                playbook.daily_tasks if playbook else []))
        can = capabilities(group.channel)
        reason = None
        if settings.per_group_daily_cap and counted[group.id] >= settings.per_group_daily_cap:
            reason = f"daily cap: {settings.per_group_daily_cap} a day for this group"
        elif Capability.SEND_GROUP not in can and Capability.SEND_GROUP_TASK not in can:
            reason = f"channel {group.channel!r} cannot post in groups"
        if reason is not None:
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.SKIPPED, start, reason))
            result.skipped[reason] += 1
        elif Capability.SEND_GROUP in can:
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.PLANNED, start))
        else:
            when = digest_time(start, zone, config.wecom.group_quota.digest_at)
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.PLANNED, when))
            result.waiting += 1
    # Direct groups: their outbox rows first, so each delivery is written queued with its row
    # (one multi-row INSERT each, rather than an UPDATE per delivery afterwards).
    external = {g.id: g.external_id for g in groups}
    direct = [r for r in rows if r.status == broadcasts.PLANNED and Capability.SEND_GROUP in capabilities(r.channel)]
    outbox_ids = await outbox.enqueue(session, [
        outbox.Outgoing(r.channel, r.text, chat=external[r.group_id], meta={"broadcast": b.id}, not_before=r.not_before)
        for r in direct], now=now)
    row_of = {id(r): o for r, o in zip(direct, outbox_ids)}
    await broadcasts.add_deliveries(session, b.id, [
        replace(r, status=broadcasts.QUEUED, outbox_id=row_of[id(r)]) if id(r) in row_of else r for r in rows],
        slot=b.slot, now=now)
    result.queued = len(outbox_ids)
    return result


def quota_limit(rule: str, now: datetime, zone: str) -> tuple[int, datetime]:
    """The group quota of ``rule`` and where its current period began."""
    if rule == "daily":
        return 1, periods.day_of(now, zone)[0]
    if rule == "weekly":
        return 7, periods.week_of(now, zone)[0]
    start, end = periods.month_of(now, zone)
    return (end - start).days, start


async def pack_group_tasks(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Merge each group's due items into one digest, hold back groups over their quota or
    without a known owner (skipped, with the reason), and pack the rest into one task per
    (owner, text) of at most 2,000 groups. Returns the tasks queued."""
    queued = 0
    for channel in ("wecom",):
        if Capability.SEND_GROUP_TASK not in capabilities(channel):
            continue
        async with db.transaction() as session:
            # Every process runs this job: one at a time reads what is due and spends the quota.
            await advisory.lock(session, QUOTA_LOCK)
            due = await broadcasts.due(session, channel=channel, now=now)
            if not due:
                continue
            by_group: dict[int, list[Delivery]] = defaultdict(list)
            for d in due:
                by_group[d.group_id].append(d)
            groups = {g.id: g for g in await broadcasts.groups_by_id(session, list(by_group))}
            limit, since = quota_limit(config.wecom.group_quota.rule, now, config.checkin.timezone)
            used = await broadcasts.messages_since(session, list(by_group), since)
            packs: dict[tuple[str, str], list[tuple[Group, list[int]]]] = defaultdict(list)
            for group_id, items in by_group.items():
                group = groups[group_id]
                ids = [d.id for d in items]
                if not group.owner:
                    await broadcasts.skip(session, ids, "no owner known for this group: nobody can confirm a task", now=now)
                elif used[group_id] >= limit:
                    period = {"daily": "day", "weekly": "week", "monthly": "month"}[config.wecom.group_quota.rule]
                    await broadcasts.skip(session, ids, f"receive quota used: {limit} a {period}", now=now)
                else:
                    digest = "\n\n".join(d.text for d in items)
                    packs[(group.owner, digest)].append((group, ids))
            for (owner, digest), members in packs.items():
                for start in range(0, len(members), TASK_GROUPS_MAX):
                    chunk = members[start:start + TASK_GROUPS_MAX]
                    [row] = await outbox.enqueue(session, [outbox.Outgoing(
                        channel, digest, to=owner, kind=outbox.GROUP_TASK,
                        meta={"chat_ids": [g.external_id for g, _ in chunk]})], now=now)
                    await broadcasts.queue(session, [(d, row) for _, ids in chunk for d in ids])
                    queued += 1
        if queued:
            log.info("%d owner task(s) queued on %s", queued, channel)
    return queued


def jobs(config: Config) -> list[Job]:
    return [Job("group_tasks", pack_group_tasks, every_s=30.0)] if config.wecom.enabled else []
