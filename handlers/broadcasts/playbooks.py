"""Playbooks (operators say SOP): planning their slots exactly once, catching up what was missed.

A slot is planned as one broadcast under the key ``sop:<name>:<slot>``; a second plan of the
same slot (a restart, the catch-up, a second process, APScheduler's own misfire run) finds the
key and does nothing. A slot that passed more than ``[scheduler] misfire_grace_s`` ago is not
sent: it is recorded as a ``missed`` broadcast and logged, so operators see it.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import select
from sqlmodel import col

import handlers.broadcasts.cards as cards
import handlers.broadcasts.planner as planner
from bot.config import Config
from bot.texts import Texts
from handlers.broadcasts.config import PLAYBOOKS, SCHEDULER, PlaybookConfig
from storage import broadcasts, once, outbox
from storage.engine import Database
from storage.models import Group, Member

log = logging.getLogger("siyu.sop")
SYSTEM = "system:scheduler"
MAX_MISSED_REPORTED = 50
# Relative playbooks look this far back for groups/members whose day N has come, so a few
# days' downtime is caught up (older ones are not sent: stale).
RELATIVE_LOOKBACK = timedelta(days=2)


def trigger_of(playbook: PlaybookConfig, config: Config) -> Any:
    """The APScheduler trigger of a cron or dated playbook; None for a day-N one (the relative
    job plans those)."""
    if playbook.cron is not None:
        return CronTrigger.from_crontab(playbook.cron, timezone=config.community.timezone)
    if playbook.at is not None:
        return DateTrigger(playbook.at)
    return None


def latest_slot(trigger: Any, now: datetime, grace_s: int) -> datetime | None:
    """The trigger's last fire time at or before ``now`` within ``grace_s`` (None if none)."""
    slots = fire_times(trigger, now - timedelta(seconds=grace_s), now)
    return slots[-1] if slots else None


def fire_times(trigger: Any, since: datetime, until: datetime, limit: int = 10_000) -> list[datetime]:
    """The trigger's fire times in [since, until]."""
    times: list[datetime] = []
    t = trigger.get_next_fire_time(None, since)
    while t is not None and t <= until and len(times) < limit:
        times.append(t)
        t = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
    return times


def slot_key(playbook: PlaybookConfig, slot: datetime) -> str:
    """In UTC: the same instant must make the same key whatever zone computed it."""
    return f"sop:{playbook.name}:{slot.astimezone(UTC).isoformat()}"


async def plan_slot(db: Database, config: Config, texts: Texts, playbook: PlaybookConfig, slot: datetime, *,
                    now: datetime) -> planner.Planned | None:
    """Plan one slot (once): None if it was planned (or recorded missed) before. A paused
    playbook's slot is recorded as cancelled: resuming does not send it late."""
    async with db.transaction() as session:
        paused = playbook.name in await broadcasts.paused(session)
        broadcast_id = await broadcasts.create(
            session, key=slot_key(playbook, slot), source="sop", playbook=playbook.name, slot=slot,
            template=playbook.text, target=playbook.target(), card=playbook.card(),
            status=broadcasts.CANCELLED if paused else broadcasts.PLANNED,
            created_by=SYSTEM, now=now, reason="paused by an operator (/sop pause)" if paused else None)
        if broadcast_id is None or paused:
            return None
        planned = await planner.plan(session, config, texts, broadcast_id, now=now)
    log.info("playbook %s, slot %s: %d group(s), %d queued, %d for owners, %d skipped", playbook.name,
             slot.isoformat(), planned.groups, planned.queued, planned.waiting, sum(planned.skipped.values()))
    return planned


async def record_missed(db: Database, playbook: PlaybookConfig, slot: datetime, *, now: datetime, reason: str) -> bool:
    """Record a slot that will not be sent, once; True if it was new."""
    async with db.transaction() as session:
        done = await broadcasts.create(
            session, key=slot_key(playbook, slot), source="sop", playbook=playbook.name, slot=slot,
            template=playbook.text, target=playbook.target(), card=playbook.card(), status=broadcasts.MISSED,
            created_by=SYSTEM, now=now, reason=reason)
    if done is not None:
        log.warning("playbook %s: the slot of %s was missed and is not sent (%s)", playbook.name, slot.isoformat(),
                    reason)
    return done is not None


async def catch_up(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Plan the latest slot of each playbook that passed while no process led, if within the
    grace time; record the older ones (and one past the grace) as missed. Returns how many
    slots were planned."""
    grace = timedelta(seconds=config[SCHEDULER].misfire_grace_s)
    planned = 0
    for playbook in config[PLAYBOOKS]:
        trigger = trigger_of(playbook, config)
        if not playbook.enabled or trigger is None:
            continue
        async with db.read() as session:
            last = await broadcasts.last_slot(session, playbook.name)
        # A playbook never planned before looks back only over the grace time: a new install
        # does not report a history it never had.
        since = last + timedelta(microseconds=1) if last is not None else now - grace
        slots = fire_times(trigger, since, now)
        if not slots:
            continue
        latest, older = slots[-1], slots[:-1]
        for slot in older[-MAX_MISSED_REPORTED:]:
            await record_missed(db, playbook, slot, now=now,
                                reason=f"coalesced: only the latest slot ({latest.isoformat()}) is sent")
        if now - latest <= grace:
            planned += await plan_slot(db, config, texts, playbook, latest, now=now) is not None
        else:
            await record_missed(db, playbook, latest, now=now,
                                reason="siyu was not running within [scheduler] misfire_grace_s of it")
    return planned


async def _reached_day(db: Database, model: type[Group] | type[Member], started_at: Any, days: int,
                       now: datetime) -> list[Any]:
    """The active groups or members whose day ``days`` after ``started_at`` has come (within
    the look-back), oldest first."""
    due = now - timedelta(days=days)
    async with db.read() as session:
        return list((await session.execute(select(model).where(
            col(model.status) == "active", started_at <= due, started_at > due - RELATIVE_LOOKBACK,
        ).order_by(col(model.id)))).scalars())


async def plan_relative(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Plan the day-N playbooks whose day has come for a group (created N days ago) or a
    member (joined N days ago: one-to-one). Returns how many were planned."""
    planned = 0
    for playbook in config[PLAYBOOKS]:
        if not playbook.enabled:
            continue
        if playbook.after_group_created_days is not None:
            days = playbook.after_group_created_days
            for group in await _reached_day(db, Group, col(Group.created_at), days, now):
                async with db.transaction() as session:
                    broadcast_id = await broadcasts.create(
                        session, key=f"sop:{playbook.name}:group:{group.id}", source="sop", playbook=playbook.name,
                        slot=group.created_at + timedelta(days=days), template=playbook.text,
                        target={"groups": [group.external_id]}, card=playbook.card(), status=broadcasts.PLANNED,
                        created_by=SYSTEM, now=now)
                    if broadcast_id is not None:
                        await planner.plan(session, config, texts, broadcast_id, now=now)
                        planned += 1
        elif playbook.after_member_joined_days is not None:
            for member in await _reached_day(db, Member, col(Member.first_seen_at), playbook.after_member_joined_days,
                                             now):
                async with db.transaction() as session:
                    # One-to-one, not a group fan-out: the claimed key is what makes it once.
                    if await once.claim(session, f"sop:{playbook.name}:member:{member.id}", now=now):
                        values = {"group": "", **planner.day_values(config, now, playbook.daily_tasks),
                                  **await planner.link_values(
                                      session, config, f"{playbook.text} {cards.used_placeholders(playbook.card())}",
                                      source=f"sop:{playbook.name}", group_id=None, at=now)}
                        text = planner.render(playbook.text, values)
                        if (card := playbook.card()) is not None:  # one-to-one: its title and URL
                            text = cards.fallback(texts, text, cards.render(card, values))
                        await outbox.enqueue(session, [outbox.Outgoing(member.channel, text, to=member.external_id,
                                                                       meta={"playbook": playbook.name})], now=now)
                        planned += 1
    if planned:
        log.info("relative playbooks: %d planned", planned)
    return planned
