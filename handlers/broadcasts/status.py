"""Where a broadcast stands, in operators' words; and the report to the operator who started
one, once nothing of it is planned or queued any more."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.channels.base import Capability
from bot.config import Config
from bot.texts import Texts
from storage import broadcasts, once, outbox
from storage.engine import Database
from storage.models import Broadcast, Delivery

STATUS_ORDER = ("delivered", "queued", "planned", "awaiting_owner", "failed", "expired", "skipped", "cancelled")
# What a broadcast's stored status says is only whether it went ahead (planned) or not
# (preview, cancelled, missed); where it stands after that is read from its deliveries.
STATES = ("preview", "cancelled", "missed", "empty", "planned", "sending", "awaiting_owner", "delivered", "partly",
          "failed", "skipped")


def state_of(b: Broadcast, counts: Mapping[str, int], *, waits_until: datetime | None = None,
             now: datetime | None = None) -> str:
    """Where ``b`` stands, one of ``STATES``: planned (no group has it yet and all wait for a
    later time, ``waits_until``: quiet hours, a window, the day's digest) → sending →
    awaiting_owner (only WeCom owners' confirmations are left) → delivered (every group), partly
    (some groups failed, expired or were skipped), failed (none got it) or skipped (every group
    was over its cap or quota)."""
    if b.status != broadcasts.PLANNED:
        return b.status
    n = {s: counts.get(s, 0) for s in STATUS_ORDER}
    if not sum(n.values()):
        return "empty"
    if n["planned"] or n["queued"]:
        started = n["delivered"] + n["awaiting_owner"] + n["failed"] + n["expired"]
        later = waits_until is not None and now is not None and waits_until > now
        return "planned" if later and not started else "sending"
    if n["awaiting_owner"]:
        return "awaiting_owner"
    missed = n["failed"] + n["expired"] + n["skipped"] + n["cancelled"]
    if n["delivered"]:
        return "partly" if missed else "delivered"
    return "failed" if n["failed"] + n["expired"] else "skipped"


async def state_now(session: AsyncSession, b: Broadcast, counts: Mapping[str, int], now: datetime) -> str:
    """``state_of`` with the time its deliveries wait for, read now."""
    return state_of(b, counts, waits_until=(await broadcasts.next_due(session, [b.id])).get(b.id), now=now)


def status_text(texts: Texts, b: Broadcast, counts: Mapping[str, int], state: str) -> str:
    parts = [texts("broadcast_count", status=texts(f"delivery_{s}"), count=counts[s])
             for s in STATUS_ORDER if counts.get(s)]
    return texts("broadcast_status", id=b.id, status=texts(f"broadcast_state_{state}"),
                 counts="，".join(parts) or "—",
                 total=sum(counts.values()))


@dataclass(frozen=True)
class Summary:
    """One broadcast as the console lists it, in operators' words."""

    broadcast: Broadcast
    source: str  # 运营群发, 定时话题「早安」 ...
    state: str  # one of STATES
    state_label: str
    text: str  # what a group got (the first one), or the template before any delivery
    varies: bool  # its groups got different texts (placeholders such as {group})
    counts: Mapping[str, int]
    card: dict[str, str] | None = None  # its link or mini-program card, as written (placeholders unfilled)


def source_label(texts: Texts, b: Broadcast) -> str:
    if b.playbook:
        return texts("broadcast_source_playbook", name=b.playbook)
    return texts.label("broadcast_source", b.source)


async def summaries(session: AsyncSession, texts: Texts, *, limit: int, now: datetime) -> list[Summary]:
    """The newest ``limit`` broadcasts: source, state and the text their groups got."""
    rows = await broadcasts.latest(session, limit=limit)
    ids = [b.id for b in rows]
    counts, samples = await broadcasts.progress_of(session, ids), await broadcasts.sample_texts(session, ids)
    due = await broadcasts.next_due(session, ids)
    out = []
    for b in rows:
        state = state_of(b, counts[b.id], waits_until=due.get(b.id), now=now)
        text, variants = samples.get(b.id, (b.template, 1))
        out.append(Summary(b, source_label(texts, b), state, texts(f"broadcast_state_{state}"), text, variants > 1,
                           counts[b.id], broadcasts.card_of(b)))
    return out


REPORT_WITHIN = timedelta(days=7)


async def report_finished(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Tell the operator who started a broadcast where it ended, once nothing of it is planned
    or queued any more (groups awaiting their owner are counted as such). Returns reports sent."""
    async with db.read() as session:
        open_ = select(col(Delivery.id)).where(col(Delivery.broadcast_id) == col(Broadcast.id),
                                               col(Delivery.status).in_((broadcasts.PLANNED, broadcasts.QUEUED)))
        done = list((await session.execute(select(Broadcast).where(
            col(Broadcast.source) == "adhoc", col(Broadcast.status) == broadcasts.PLANNED,
            col(Broadcast.planned_at) >= now - REPORT_WITHIN, ~open_.exists(),
        ).order_by(col(Broadcast.id)).limit(100))).scalars())
    sent = 0
    for b in done:
        channel, _, operator = b.created_by.partition(":")
        async with db.transaction() as session:
            if not await once.claim(session, f"broadcast:{b.id}:report", now=now):
                continue
            if Capability.SEND_PRIVATE not in config.running(channel):
                # Started from the REST API or the console (or a channel since switched off):
                # nobody to tell in chat; the console and GET /api/broadcasts show where it ended.
                continue
            counts = await broadcasts.progress(session, b.id)
            text = texts("broadcast_finished") + status_text(texts, b, counts, await state_now(session, b, counts, now))
            await outbox.enqueue(session, [outbox.Outgoing(channel, text, to=operator)], now=now)
            sent += 1
    return sent
