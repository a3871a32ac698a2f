"""Telling operators: a finished handover goes to whoever asked for it (in chat), and to the
operators' group when it was asked through the REST API; an owner task withdrawn because its
group's owner changed or left goes to the operators (the group robot's alerts, or the admins
one-to-one where there is no robot). Each is said once (``handovers.mark_reported``,
``storage.once``), whichever process says it."""
from __future__ import annotations

from datetime import datetime, timedelta

import handlers.handover.services as services
from bot.channels.base import Capability
from bot.channels.robot.config import ROBOT
from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from storage import audit, handovers, once, outbox
from storage.engine import Database

LOOK_BACK = timedelta(days=2)


def to_operators(config: Config, text: str) -> list[outbox.Outgoing]:
    """The operators' path: the robot's group when it alerts, else each admin one-to-one."""
    robot = config[ROBOT]
    if robot.enabled and robot.alerts:
        return [outbox.Outgoing("robot", text, chat=robot.chat)]
    return [outbox.Outgoing(channel, text, to=who) for channel, who in config.operators.identities()
            if Capability.SEND_PRIVATE in config.running(channel)]


async def report_finished(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    async with db.read() as session:
        done = await handovers.unreported(session)
    told = 0
    for h in done:
        async with db.transaction() as session:
            if not await handovers.mark_reported(session, h.id):
                continue
            text = await services.report_text(session, texts, h)
            channel, _, who = h.requested_by.partition(":")
            if Capability.SEND_PRIVATE in config.running(channel):
                messages = [outbox.Outgoing(channel, text, to=who)]
            else:  # asked through the API (or a channel since switched off)
                messages = to_operators(config, text)
            await outbox.enqueue(session, messages, now=now)
            told += 1
    return told


async def tell_moves(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    async with db.read() as session:
        moves = await audit.of_action(session, outbox.OWNER_TASK_MOVED, since=now - LOOK_BACK)
    told = 0
    for entry in moves:
        async with db.transaction() as session:
            if not await once.claim(session, f"handover:moved:{entry.id}", now=now):
                continue
            args = entry.args
            groups = len(args.get("groups") or [])
            key = "handover_owner_left" if args.get("left") else "handover_owner_moved"
            text = texts(key, from_staff=args.get("from") or "—", groups=groups,
                         owners="、".join(args.get("owners") or []) or "—")
            await outbox.enqueue(session, to_operators(config, text), now=now)
            told += 1
    return told


def jobs(config: Config) -> list[Job]:
    if services.channel_for(config) is None:
        return []
    return [Job("handover_reports", report_finished, every_s=30.0), Job("owner_task_moves", tell_moves, every_s=30.0)]
