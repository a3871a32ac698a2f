"""Planning: a broadcast becomes one delivery per target group (DESIGN §7).

Planning renders the text for each group, moves it out of quiet hours and into the playbook's
window, counts the per-group daily cap, and follows what the group's channel can do (DESIGN §3):
a channel that posts in groups gets an outbox row per group at once; a channel that only makes
owner-confirmed tasks (WeCom customer groups) keeps the delivery planned for the day's digest
(``digests``). The broadcast's unique key and the deliveries' (broadcast, group) key make all
of it happen once.

Placeholders: {group}, {date}, {weekday}, {task} and {member_center} (and its pages,
{member_center:mall}: ``bot.links``, with the campaign of the playbook and group) are the planner's; other
features add theirs through ``TEMPLATE_VALUES`` (the leaderboard's {leaderboard}). They work in
the text and in a broadcast's card (``cards``): a group whose channel shows cards gets the card
filled for it; any other gets the card's title and URL after the text.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

import handlers.broadcasts.cards as cards
from bot import links, periods
from bot.channels.base import Capability
from bot.channels.wecom.config import WECOM
from bot.config import Config
from bot.feature import Hook
from bot.texts import Texts
from handlers.broadcasts.config import BROADCASTS, PLAYBOOKS, SCHEDULER
from handlers.broadcasts.timing import WEEKDAYS, allowed_at, digest_time
from storage import advisory, broadcasts, outbox
from storage.models import Broadcast, Group

log = logging.getLogger("siyu.broadcasts")
# Planning against the per-group daily cap and packing against WeCom's group quota.
QUOTA_LOCK = "siyu:group-quota"
# {name} or {name:page} (a link placeholder such as {member_center:mall}, ``bot.links``).
PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[a-z_]+)?)\}")


@dataclass(frozen=True)
class Placeholders:
    """Placeholders another feature fills per group: ``values(session, config, texts, group,
    slot, names)`` returns the values of those of ``names`` the template uses."""

    names: frozenset[str]
    values: Callable[[AsyncSession, Config, Texts, Group, datetime, frozenset[str]], Awaitable[dict[str, str]]]


TEMPLATE_VALUES: Hook[Placeholders] = Hook("broadcast template placeholders")


@dataclass
class Planned:
    groups: int = 0
    queued: int = 0  # outbox rows written (direct channels)
    waiting: int = 0  # kept for the digest / owners' tasks
    skipped: Counter[str] = field(default_factory=Counter)


def render(template: str, values: dict[str, str]) -> str:
    """Fill the placeholders given; other braces stay as they are (an operator's text may hold any)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def day_values(config: Config, slot: datetime, tasks: list[str]) -> dict[str, str]:
    """{date}, {weekday} and {task} of the slot's local day."""
    local = slot.astimezone(config.zone)
    return {"date": local.strftime("%m月%d日"), "weekday": WEEKDAYS[local.weekday()],
            "task": tasks[local.date().toordinal() % len(tasks)] if tasks else ""}


async def link_values(session: AsyncSession, config: Config, template: str, *, source: str, group_id: int | None,
                      at: datetime) -> dict[str, str]:
    """{member_center} and {member_center:<page>} with the campaign of ``source`` and the group."""
    return await links.values(session, config, template, source=source, group_id=group_id, now=at,
                              overrides={"member_center": config[BROADCASTS].member_center_url})


def source_of(b: Broadcast) -> str:
    """The campaign a broadcast's links carry: its playbook's, or its own."""
    return f"sop:{b.playbook}" if b.playbook else f"broadcast:{b.id}"


async def _values(session: AsyncSession, config: Config, texts: Texts, template: str, group: Group,
                  slot: datetime, tasks: list[str], source: str) -> dict[str, str]:
    values = {"group": group.name or texts("group_name_unknown"), **day_values(config, slot, tasks)}
    values |= await link_values(session, config, template, source=source, group_id=group.id, at=slot)
    used = frozenset(PLACEHOLDER.findall(template))
    for provider in config.hooked(TEMPLATE_VALUES):
        if provider.names & used:
            values |= await provider.values(session, config, texts, group, slot, provider.names & used)
    return values


def tasks_of(config: Config, b: Broadcast) -> list[str]:
    """The {task}s of the broadcast's playbook (none for an operator's broadcast)."""
    playbook = next((p for p in config[PLAYBOOKS] if p.name == b.playbook), None)
    return playbook.daily_tasks if playbook else []


async def filled(session: AsyncSession, config: Config, texts: Texts, b: Broadcast, group: Group,
                 ) -> tuple[str, dict[str, str] | None]:
    """The broadcast's text and card filled for ``group``: the card, for a channel that shows
    cards; for any other, None and the card's title and URL after the text; None and the text
    alone for a card no longer fit to send once filled."""
    card = broadcasts.card_of(b)
    values = await _values(session, config, texts, f"{b.template} {cards.used_placeholders(card)}", group, b.slot,
                           tasks_of(config, b), source_of(b))
    text = render(b.template, values)
    if card is None:
        return text, None
    shown = cards.render(card, values)
    if not cards.sendable(shown):
        # Filled, it breaks WeCom's limits, or its {member_center} setting was removed since:
        # the text goes alone rather than a link nobody checked.
        log.warning("broadcast %s: its card, filled for group %s, cannot be sent; the text goes alone", b.id,
                    group.external_id)
        return text, None
    if Capability.GROUP_CARDS in config.capabilities(group.channel):
        return text, shown
    return cards.fallback(texts, text, shown), None


async def plan(session: AsyncSession, config: Config, texts: Texts, broadcast_id: int, *, now: datetime) -> Planned:
    """Write the deliveries of a planned broadcast (in the caller's transaction)."""
    # One planner at a time across processes: the per-group daily cap counted below must
    # include what another process is planning at this moment.
    await advisory.lock(session, QUOTA_LOCK)
    b = await broadcasts.get(session, broadcast_id)
    if b is None or b.status != broadcasts.PLANNED:
        raise ValueError(f"broadcast {broadcast_id} is not planned")
    playbook = next((p for p in config[PLAYBOOKS] if p.name == b.playbook), None)
    settings = config[SCHEDULER]
    start = allowed_at(max(b.slot, now), config.zone, quiet=settings.quiet_hours,
                       window=playbook.window if playbook else [])
    groups = await broadcasts.targets(session, b.target)
    day, day_end = periods.day_of(b.slot, config.zone)
    counted = await broadcasts.counted_since(session, [g.id for g in groups], day, day_end)
    result = Planned(groups=len(groups))
    rows: list[broadcasts.NewDelivery] = []
    shown: dict[int, dict[str, str]] = {}  # group id -> its card (channels that show cards)
    for group in groups:
        text, card = await filled(session, config, texts, b, group)
        if card is not None:
            shown[group.id] = card
        can = config.capabilities(group.channel)
        reason = None
        if settings.per_group_daily_cap and counted[group.id] >= settings.per_group_daily_cap:
            reason = f"daily cap: {settings.per_group_daily_cap} a day for this group"
        elif Capability.SEND_GROUP not in can and Capability.SEND_OWNER_TASK not in can:
            reason = f"channel {group.channel!r} cannot post in groups"
        if reason is not None:
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.SKIPPED, start, reason))
            result.skipped[reason] += 1
        elif Capability.SEND_GROUP in can:
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.PLANNED, start))
        else:
            when = digest_time(start, config.zone, config[WECOM].group_quota.digest_at)
            rows.append(broadcasts.NewDelivery(group.id, group.channel, text, broadcasts.PLANNED, when))
            result.waiting += 1
    # Direct groups: their outbox rows first, so each delivery is written queued with its row
    # (one multi-row INSERT each, rather than an UPDATE per delivery afterwards).
    external = {g.id: g.external_id for g in groups}
    direct = [r for r in rows
              if r.status == broadcasts.PLANNED and Capability.SEND_GROUP in config.capabilities(r.channel)]
    outbox_ids = await outbox.enqueue(session, [
        outbox.Outgoing(r.channel, r.text, chat=external[r.group_id], not_before=r.not_before,
                        meta={"broadcast": b.id, **({"card": shown[r.group_id]} if r.group_id in shown else {})})
        for r in direct], now=now)
    row_of = {id(r): o for r, o in zip(direct, outbox_ids, strict=True)}
    await broadcasts.add_deliveries(session, b.id, [
        replace(r, status=broadcasts.QUEUED, outbox_id=row_of[id(r)]) if id(r) in row_of else r for r in rows],
        slot=b.slot, now=now)
    result.queued = len(outbox_ids)
    return result
