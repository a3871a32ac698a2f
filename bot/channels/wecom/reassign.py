"""Owner tasks whose owner is not the group's owner any more, or has left, are withdrawn and
their groups planned again, so that the next digest packs them to whoever owns each group now.

A group's owner changes by a ``change_external_chat`` event with ``UpdateDetail`` = ``change_owner``
(wecom.md §3.2; binarywang/WxJava:weixin-java-cp/.../constant/WxCpConsts.java CHANGE_OWNER), by a
handover siyu made itself (``groupchat/transfer``: changes made through
the API produce no callback), or a staff member leaves (``change_contact`` / ``delete_user``).
A task left with the old owner would never be confirmed (WeCom answers status 2 for a group
whose owner is not its sender, wecom.md §3.5) and would hold the group's quota until it expired.

Withdrawing is idempotent: what decides is "a task waits for someone who is not the owner of one
of its groups now", read from the stored groups, so a callback handled twice, or handled again
after a failure, withdraws nothing twice. Before withdrawing, the task's results are read: a
group that already got it keeps it (delivered), and only the others are planned again. Each
withdrawal is audited (``OWNER_TASK_MOVED``); the operators are told from the audit trail.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import bot.channels.wecom.transfers as transfers
from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.messages import NAME
from bot.channels.wecom.owner_tasks import OUTCOMES
from bot.clock import Clock
from storage import audit, broadcasts, handovers, outbox
from storage.engine import Database
from storage.models import OutboxMessage

log = logging.getLogger("siyu.wecom.reassign")
# WeCom's answer to cancelling a task that is over already: nothing left to withdraw.
TASK_GONE = frozenset({41047})


@dataclass(frozen=True)
class Stale:
    row: OutboxMessage
    chats: list[str]
    owners: dict[str, str | None]  # chat → its owner now
    left: bool  # the task's owner has left the company


class Reassign:
    def __init__(self, db: Database, api: WeComAPI, clock: Clock) -> None:
        self.db, self.api, self.clock = db, api, clock

    async def staff_left(self, staff: str) -> int:
        """``staff`` left: recorded (their groups wait for a handover), their tasks withdrawn."""
        async with self.db.transaction() as session:
            if await handovers.mark_departed(session, NAME, staff, now=self.clock.now()):
                log.warning("staff %s left the company: their owner tasks are withdrawn", staff)
        return await self.reconcile()

    async def reconcile(self, chat_ids: list[str] | None = None) -> int:
        """Withdraw the open tasks (of groups among ``chat_ids``, or all) that wait for someone
        who is not the group's owner now or has left; returns how many were withdrawn."""
        moved = 0
        for stale in await self._stale(chat_ids):
            try:
                moved += await self._withdraw(stale)
            except WeComError as exc:
                if exc.retryable:
                    raise  # the callback is handled again later, and finds the task still stale
                log.warning("owner task %s: %s; planned again all the same", stale.row.id, exc)
                moved += await self._requeue(stale, {}, why=str(exc))
        return moved

    async def _stale(self, chat_ids: list[str] | None) -> list[Stale]:
        async with self.db.read() as session:
            rows = await outbox.open_owner_tasks(session, channel=NAME)
            wanted = set(chat_ids) if chat_ids is not None else None
            rows = [r for r in rows if wanted is None or wanted & set(r.meta.get("chat_ids") or [])]
            chats = sorted({str(c) for r in rows for c in r.meta.get("chat_ids") or []})
            owners = await handovers.owners_of(session, NAME, chats)
            gone = await handovers.departed(session, NAME, sorted({r.to or "" for r in rows}))
        out = []
        for row in rows:
            mine = [str(c) for c in row.meta.get("chat_ids") or []]
            left = row.to in gone
            if left or any(owners.get(c) != row.to for c in mine):
                out.append(Stale(row, mine, {c: owners.get(c) for c in mine}, left))
        return out

    async def _withdraw(self, stale: Stale) -> int:
        row = stale.row
        msgid = str(row.meta.get("msgid") or "")
        outcome: dict[str, tuple[str, str | None]] = {}
        if row.status == outbox.AWAITING_OWNER and msgid:
            results = await self.api.get_groupmsg_send_result(msgid, row.to or "")
            outcome = {r["chat_id"]: OUTCOMES[r["status"]] for r in results
                       if r.get("chat_id") and r.get("status") in OUTCOMES}
            if any(c not in outcome for c in stale.chats):
                try:
                    await transfers.cancel_groupmsg_send(self.api, msgid)
                except WeComError as exc:
                    if exc.errcode not in TASK_GONE:
                        raise
        why = (f"withdrawn: {row.to} left the company" if stale.left
               else f"withdrawn: the group's owner is no longer {row.to}")
        return await self._requeue(stale, outcome, why=why)

    async def _requeue(self, stale: Stale, outcome: dict[str, tuple[str, str | None]], *, why: str) -> int:
        row, now = stale.row, self.clock.now()
        async with self.db.transaction() as session:
            if not await outbox.withdraw_owner_task(session, row.id, reason=why):
                return 0  # settled or withdrawn meanwhile (another process)
            await broadcasts.settle_groups(session, row.id, outcome, now=now)
            again = await broadcasts.requeue(session, row.id, reason=why)
            await audit.record(session, actor="system", action=outbox.OWNER_TASK_MOVED, result="ok", now=now, args={
                "task": row.id, "msgid": row.meta.get("msgid"), "from": row.to, "left": stale.left,
                "groups": [c for c in stale.chats if c not in outcome],
                "owners": sorted({o for c, o in stale.owners.items() if c not in outcome and o}),
                "deliveries": again,
            })
        log.info("owner task %s of %s withdrawn (%s): %d delivery(ies) planned again", row.id, row.to, why, again)
        return 1
