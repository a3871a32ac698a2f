"""Carrying out handovers (在职继承 / 离职继承) that operators asked for (``storage.handovers``).

The feature that takes the request knows no channel (DESIGN §10): it writes a pending handover
for the channel that can transfer contacts, and this job of the WeCom channel does the rest:
lists the staff member's customers (``externalcontact/list``, or ``get_unassigned_list`` for one
who left) and groups (``groupchat/list`` with ``owner_filter``), asks WeCom to move them in
batches of 100 (``transfers``), and polls ``transfer_result`` until each customer has taken
over, refused or failed. A customer handed over while serving may refuse within 24 h, so a
handover stays running until WeCom says where each one ended. Groups move at once; WeCom sends
no callback for a change made through the API, so their stored owner is set here and their
waiting owner tasks are withdrawn and planned again for the new owner (``Reassign``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import bot.channels.wecom.transfers as transfers
from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.messages import NAME
from bot.channels.wecom.reassign import Reassign
from bot.clock import Clock
from bot.config import Config
from bot.jobs import Job
from bot.texts import Texts
from storage import audit, handovers
from storage.engine import Database
from storage.handovers import Handover

log = logging.getLogger("siyu.wecom.handover")
POLL_EVERY_S = 60.0
# A handover still asking WeCom this long after it was made was interrupted (a restart mid-way):
# it is failed, with what it moved recorded, rather than asked again (WeCom refuses a customer
# already in a transfer).
INTERRUPTED_AFTER = timedelta(minutes=30)


class Handovers:
    def __init__(self, db: Database, api: WeComAPI, clock: Clock, reassign: Reassign) -> None:
        self.db, self.api, self.clock, self.reassign = db, api, clock, reassign

    async def run_once(self) -> int:
        """Start the pending handovers and follow the running ones; how many finished."""
        async with self.db.read() as session:
            pending = await handovers.of_status(session, NAME, handovers.PENDING)
            running = await handovers.of_status(session, NAME, handovers.RUNNING)
            starting = await handovers.of_status(session, NAME, handovers.STARTING)
        finished = 0
        for h in starting:
            if self.clock.now() - h.created_at > INTERRUPTED_AFTER:
                await self._finish(h, handovers.FAILED, error="interrupted")
                finished += 1
        for h in pending:
            finished += await self._start(h)
        for h in running:
            try:
                finished += await self._poll(h)
            except WeComError as exc:
                log.warning("handover %s: polling its results failed (%s); asking again later", h.id, exc)
        return finished

    async def _start(self, h: Handover) -> int:
        async with self.db.transaction() as session:
            if not await handovers.start(session, h.id):
                return 0  # another process took it
        resigned = h.mode == "resigned"
        try:
            if h.scope in ("customers", "all"):
                await self._customers(h, resigned)
            if h.scope in ("groups", "all"):
                await self._groups(h, resigned)
        except WeComError as exc:
            # What moved before the error stays recorded and is reported with the error.
            log.warning("handover %s stopped: %s", h.id, exc)
            await self._finish(h, handovers.FAILED, error=transfers.reason(exc.errcode))
            return 1
        async with self.db.transaction() as session:
            await handovers.started(session, h.id)
        return await self._poll(h)

    async def _customers(self, h: Handover, resigned: bool) -> None:
        found = await (transfers.unassigned_of if resigned else transfers.customers_of)(self.api, h.from_staff)
        for start in range(0, len(found), transfers.BATCH):
            batch = found[start:start + transfers.BATCH]
            codes = await transfers.transfer_customers(self.api, resigned=resigned, from_staff=h.from_staff,
                                                       to_staff=h.to_staff, customers=batch)
            results: dict[str, tuple[str, str | None]] = {
                c: (handovers.WAITING, None) if not codes.get(c) else (handovers.FAILED, transfers.reason(codes[c]))
                for c in batch}
            async with self.db.transaction() as session:
                await handovers.add_items(session, h.id, "customer", results, now=self.clock.now())

    async def _groups(self, h: Handover, resigned: bool) -> None:
        chats = [str(c["chat_id"]) for c in await self.api.groupchat_list([h.from_staff]) if c.get("chat_id")]
        for start in range(0, len(chats), transfers.BATCH):
            batch = chats[start:start + transfers.BATCH]
            failed = await transfers.transfer_groups(self.api, resigned=resigned, chat_ids=batch,
                                                     new_owner=h.to_staff)
            moved = [c for c in batch if c not in failed]
            results: dict[str, tuple[str, str | None]] = {
                c: (handovers.FAILED, transfers.reason(failed[c])) if c in failed else (handovers.DONE, None)
                for c in batch}
            async with self.db.transaction() as session:
                await handovers.add_items(session, h.id, "group", results, now=self.clock.now())
                await handovers.set_owner(session, NAME, moved, h.to_staff)
            await self.reassign.reconcile(moved)

    async def _poll(self, h: Handover) -> int:
        async with self.db.read() as session:
            waiting = set(await handovers.waiting(session, h.id))
        if waiting:
            statuses = await transfers.transfer_results(self.api, resigned=h.mode == "resigned",
                                                        from_staff=h.from_staff, to_staff=h.to_staff)
            settled = {c: transfers.TAKEOVER[s] for c, s in statuses.items()
                       if c in waiting and s in transfers.TAKEOVER and transfers.TAKEOVER[s][0] != handovers.WAITING}
            async with self.db.transaction() as session:
                await handovers.settle(session, h.id, settled, now=self.clock.now())
            waiting -= set(settled)
        if waiting:
            return 0
        await self._finish(h, handovers.DONE)
        return 1

    async def _finish(self, h: Handover, status: str, *, error: str | None = None) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            await handovers.finish(session, h.id, status=status, now=now, error=error)
            counts = await handovers.counts(session, h.id)
            await audit.record(session, actor="system", action="handover.finished", now=now,
                               result="ok" if status == handovers.DONE else "error", detail=error, args={
                                   "handover": h.id, "from": h.from_staff, "to": h.to_staff,
                                   **{f"{k}_{s}": n for (k, s), n in sorted(counts.items())}})
        log.info("handover %s (%s → %s) %s%s", h.id, h.from_staff, h.to_staff, status, f": {error}" if error else "")

    def job(self) -> Job:
        async def follow(db: Database, config: Config, texts: Texts, now: datetime) -> int:
            return await self.run_once()

        # Not at start: a handover is never due at once (WeCom gives customers 24 h), and a run
        # at start would race the first requests of a test or an operator to nothing's benefit.
        return Job("wecom_handovers", follow, every_s=POLL_EVERY_S)
