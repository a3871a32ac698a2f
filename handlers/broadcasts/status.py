"""Where a broadcast stands, in operators' words; and the report to the operator who started
one, once nothing of it is planned or queued any more."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from bot.channels.base import Capability
from bot.config import Config
from bot.texts import Texts
from storage import broadcasts, once, outbox
from storage.engine import Database
from storage.models import Broadcast, Delivery

STATUS_ORDER = ("delivered", "queued", "planned", "awaiting_owner", "failed", "expired", "skipped", "cancelled")


def status_text(texts: Texts, b: Broadcast, counts: dict[str, int]) -> str:
    parts = [texts("broadcast_count", status=texts(f"delivery_{s}"), count=counts[s])
             for s in STATUS_ORDER if counts.get(s)]
    return texts("broadcast_status", id=b.id, status=texts(f"broadcast_state_{b.status}"),
                 counts="，".join(parts) or "—",
                 total=sum(counts.values()))


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
            text = texts("broadcast_finished") + status_text(texts, b, await broadcasts.progress(session, b.id))
            await outbox.enqueue(session, [outbox.Outgoing(channel, text, to=operator)], now=now)
            sent += 1
    return sent
