"""Customer groups kept true from events, and from ``groupchat/get`` when an event was missed.

Each change_external_chat event carries the member-list version before (LastMemVer) and after
(CurMemVer) it. If the version we stored is not LastMemVer, an event was lost or came out of
order, and the group is re-read from WeCom (wecom.md §3.2, §6.8). Changes made through the API
produce no callback at all, so a re-read is the only way to see them.
"""
from __future__ import annotations

import logging

from bot.channels.wecom.api import WeComAPI
from bot.channels.wecom.messages import NAME, GroupChange
from bot.clock import Clock
from storage import community
from storage.community import Sighting
from storage.engine import Database

log = logging.getLogger("siyu.wecom.groups")


class GroupSync:
    def __init__(self, db: Database, api: WeComAPI, clock: Clock) -> None:
        self.db = db
        self.api = api
        self.clock = clock

    async def apply(self, change: GroupChange) -> None:
        """Apply ``change`` after its member joins and leaves were handled as updates."""
        async with self.db.read() as session:
            group = await community.group_by_external(session, NAME, change.chat_id)
        if change.change_type == "dismiss":
            if group is not None:
                async with self.db.transaction() as session:
                    await community.update_group(session, group.id, status="dismissed")
            return
        in_order = (
            group is not None and change.change_type == "update" and change.last_version is not None
            and group.member_version == change.last_version and change.detail not in ("change_owner", "change_name")
        )
        if in_order and group is not None:
            async with self.db.transaction() as session:
                await community.update_group(session, group.id, member_version=change.current_version)
            return
        if group is not None and change.change_type == "update" and change.detail in ("add_member", "del_member"):
            log.info("group %s: stored version %s, event expected %s: an event was missed; re-reading the group",
                     change.chat_id, group.member_version, change.last_version)
        await self.sync(change.chat_id)

    async def sync(self, chat_id: str) -> None:
        """Make the stored group what ``groupchat/get`` says: name, owner, members, version."""
        chat = await self.api.groupchat_get(chat_id)  # outside any transaction: network I/O
        now = self.clock.now()
        people = {str(m["userid"]) for m in chat.get("member_list", []) if m.get("userid")}
        async with self.db.transaction() as session:
            refs = await community.touch_groups(session, {(NAME, chat_id): Sighting(name=chat.get("name") or None)},
                                                now=now)
            group = refs[(NAME, chat_id)]
            members = await community.touch_members(session, {(NAME, p): Sighting() for p in people}, now=now)
            added, removed = await community.reconcile_members(session, group.id, {m.id for m in members.values()},
                                                               now=now)
            await community.update_group(
                session, group.id, owner=chat.get("owner") or None, status="active",
                member_version=chat.get("member_version") or None,
            )
        if added or removed:
            log.info("group %s re-read from WeCom: %d member(s) added, %d removed", chat_id, added, removed)

    async def owner_of(self, chat_id: str) -> str | None:
        async with self.db.read() as session:
            group = await community.group_by_external(session, NAME, chat_id)
        if group is None or group.owner is None:
            await self.sync(chat_id)
            async with self.db.read() as session:
                group = await community.group_by_external(session, NAME, chat_id)
        return group.owner if group is not None else None
