"""Following up the mass-send tasks WeCom customer groups get (wecom.md §3.5): nothing is sent
until the group's owner confirms the task in the WeCom client, so siyu polls each task's
results, marks each group delivered or failed, reminds the owner (at most 3 times in 24 h)
and expires a task nobody confirmed. What waits for a person is visible as awaiting_owner."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.config import GroupQuotaConfig
from bot.clock import Clock
from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from storage import broadcasts, outbox
from storage.engine import Database

log = logging.getLogger("siyu.wecom.tasks")
POLL_EVERY_S = 60.0
REMINDERS_PER_DAY = 3
# send_list status → a delivery's outcome (0, not sent yet, keeps it waiting).
OUTCOMES = {1: (broadcasts.DELIVERED, None), 2: (broadcasts.FAILED, "the group's owner is not a member any more (2)"),
            3: (broadcasts.FAILED, "the group already got a mass message today (3: WeCom's quota)")}


def _strings(meta: dict[str, object], key: str) -> list[str]:
    """A list of strings kept in a row's JSON ``meta`` (none if absent)."""
    value = meta.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


class OwnerTasks:
    def __init__(self, db: Database, api: WeComAPI, clock: Clock, config: GroupQuotaConfig) -> None:
        self.db, self.api, self.clock, self.config = db, api, clock, config

    async def poll_once(self) -> int:
        """Check every task awaiting its owner; return how many were settled."""
        async with self.db.read() as session:
            tasks = await outbox.awaiting_owner(session, channel="wecom", kind=outbox.OWNER_TASK)
        settled = 0
        for task in tasks:
            try:
                settled += await self._follow(task.id, task.to or "", dict(task.meta or {}), task.delivered_at)
            except WeComError as exc:
                log.warning("owner task %s (msgid %s): %s; asking again later", task.id, task.meta.get("msgid"), exc)
        return settled

    async def _follow(self, row_id: int, owner: str, meta: dict[str, object], handed_at: datetime | None) -> int:
        msgid = str(meta.get("msgid") or "")
        now = self.clock.now()
        results = await self.api.get_groupmsg_send_result(msgid, owner) if msgid else []
        outcome = {r["chat_id"]: OUTCOMES[r["status"]] for r in results
                   if r.get("chat_id") and r.get("status") in OUTCOMES}
        waiting = [c for c in _strings(meta, "chat_ids") if c not in outcome]
        expired = handed_at is not None and now - handed_at > timedelta(hours=self.config.expire_after_h)
        remind = (not expired and waiting and msgid and handed_at is not None
                  and now - handed_at > timedelta(hours=self.config.remind_after_h) and self._may_remind(meta, now))
        if remind:
            await self.api.remind_groupmsg_send(msgid)
            meta["reminders"] = [*_strings(meta, "reminders"), now.isoformat()]
            log.info("owner %s reminded of task %s (%d group(s) waiting)", owner, msgid, len(waiting))
        async with self.db.transaction() as session:
            await broadcasts.settle_groups(session, row_id, outcome, now=now)
            if expired and waiting:
                why = f"the owner did not confirm within {self.config.expire_after_h} h"
                await broadcasts.settle_groups(session, row_id, dict.fromkeys(waiting, (broadcasts.EXPIRED, why)),
                                               now=now)
                log.warning("owner task %s expired: %s never confirmed it for %d group(s)", msgid, owner, len(waiting))
            if expired or not waiting:
                sent = any(o[0] == broadcasts.DELIVERED for o in outcome.values())
                await outbox.close_owner_task(session, row_id, status=outbox.DELIVERED if sent else outbox.FAILED,
                                              now=now,
                                              meta=meta, error=None if sent else "the owner's task sent to no group")
                return 1
            if remind:
                await outbox.close_owner_task(session, row_id, status=outbox.AWAITING_OWNER, now=now, meta=meta)
        return 0

    def _may_remind(self, meta: dict[str, object], now: datetime) -> bool:
        sent = [datetime.fromisoformat(t) for t in _strings(meta, "reminders")]
        recent = [t for t in sent if now - t < timedelta(hours=24)]
        spaced = not sent or now - max(sent) >= timedelta(hours=self.config.remind_after_h)
        return len(recent) < REMINDERS_PER_DAY and spaced

    def job(self) -> Job:
        """Following up runs with the other periodic jobs (``bot.jobs``), from the start."""

        async def follow_up(db: Database, config: Config, texts: Texts, now: datetime) -> int:
            return await self.poll_once()

        return Job("owner_task_follow_up", follow_up, every_s=POLL_EVERY_S, at_start=True)
