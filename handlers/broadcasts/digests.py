"""The day's digests for groups reached only through their owner (WeCom customer groups,
DESIGN §3): each group's due items merged into one digest, held to the group's receive quota,
and packed into one owner task per (owner, digest) of at most 2,000 groups. The items' cards
(filled for the group now, as the planner fills them) go with the digest, at most 9."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

import handlers.broadcasts.cards as cards
from bot import periods
from bot.channels.base import Capability
from bot.channels.wecom.config import WECOM
from bot.config import Config
from bot.texts import Texts
from handlers.broadcasts.planner import QUOTA_LOCK, filled
from storage import advisory, broadcasts, handovers, outbox
from storage.engine import Database
from storage.models import Broadcast, Delivery, Group

log = logging.getLogger("siyu.broadcasts")
# add_msg_template takes at most 2,000 chat ids (wecom.md §3.5).
TASK_GROUPS_MAX = 2000
# ... and at most 9 attachments (wecom.md §3.4; 92135: "附件，最多支持添加9个附件", quoted in SDK
# comments: find_string "最多支持添加9个附件"); more cards go as their title and URL in the text.
TASK_CARDS_MAX = 9
QUOTA_PERIOD = {"daily": "day", "weekly": "week", "monthly": "month"}


def quota_limit(rule: str, now: datetime, zone: ZoneInfo) -> tuple[int, datetime]:
    """The group quota of ``rule`` and where its current period began."""
    if rule == "daily":
        return 1, periods.day_of(now, zone)[0]
    if rule == "weekly":
        return 7, periods.week_of(now, zone)[0]
    start, end = periods.month_of(now, zone)
    return (end - start).days, start


async def pack_owner_tasks(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Merge each group's due items into one digest, hold back groups over their quota or
    without a known owner (skipped, with the reason), and pack the rest into one task per
    (owner, text) of at most 2,000 groups. Returns the tasks queued."""
    queued = 0
    rule = config[WECOM].group_quota.rule
    channels = [name for kind in config.channels for name, can in kind.capabilities.items()
                if Capability.SEND_OWNER_TASK in can]
    for channel in channels:
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
            limit, since = quota_limit(rule, now, config.zone)
            used = await broadcasts.messages_since(session, list(by_group), since)
            # An owner who left cannot confirm: their groups' items wait, planned, for the handover.
            gone = await handovers.departed(session, channel, sorted({g.owner for g in groups.values() if g.owner}))
            with_cards = {b.id: b for b in await broadcasts.by_ids(session, {d.broadcast_id for d in due})
                          if broadcasts.card_of(b) is not None}
            packs: dict[tuple[str, str, str], list[tuple[Group, list[int]]]] = defaultdict(list)
            for group_id, items in by_group.items():
                group = groups[group_id]
                ids = [d.id for d in items]
                if not group.owner:
                    await broadcasts.skip(session, ids, "no owner known for this group: nobody can confirm a task",
                                          now=now)
                elif group.owner in gone:
                    continue
                elif used[group_id] >= limit:
                    await broadcasts.skip(session, ids, f"receive quota used: {limit} a {QUOTA_PERIOD[rule]}", now=now)
                else:
                    digest, shown = await _digest(session, config, texts, group, items, with_cards)
                    packs[(group.owner, digest, json.dumps(shown, ensure_ascii=False))].append((group, ids))
            for (owner, digest, shown_json), members in packs.items():
                for start in range(0, len(members), TASK_GROUPS_MAX):
                    chunk = members[start:start + TASK_GROUPS_MAX]
                    [row] = await outbox.enqueue(session, [outbox.Outgoing(
                        channel, digest, to=owner, kind=outbox.OWNER_TASK,
                        meta={"chat_ids": [g.external_id for g, _ in chunk],
                              **({"cards": json.loads(shown_json)} if shown_json != "[]" else {})})], now=now)
                    await broadcasts.queue(session, [(d, row) for _, ids in chunk for d in ids])
                    queued += 1
        if queued:
            log.info("%d owner task(s) queued on %s", queued, channel)
    return queued


async def _digest(session: AsyncSession, config: Config, texts: Texts, group: Group, items: list[Delivery],
                  with_cards: dict[int, Broadcast]) -> tuple[str, list[dict[str, str]]]:
    """The group's digest text and its cards, filled for the group (past the 9th, in the text)."""
    parts: list[str] = []
    shown: list[dict[str, str]] = []
    for d in items:
        b = with_cards.get(d.broadcast_id)
        if b is None:
            parts.append(d.text)
            continue
        text, card = await filled(session, config, texts, b, group)
        if card is None:  # not fit to send once filled: the text alone
            parts.append(text)
            continue
        if card not in shown and len(shown) < TASK_CARDS_MAX:
            shown.append(card)
        parts.append(d.text if card in shown else cards.fallback(texts, d.text, card))
    return "\n\n".join(parts), shown
