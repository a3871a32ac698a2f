"""微信客服 (wecom.md §3.11): the only way to talk one-to-one with WeChat users.

A ``kf_msg_or_event`` callback (same crypto, inbox and dedup as every WeCom callback) says
there is something to pull: ``kf/sync_msg`` pages from the cursor persisted per account, each
user message becomes a one-to-one update on channel ``wecom_kf`` keyed by its msgid (so a
page pulled twice handles nothing twice), and the cursor advances only after its page was
handled: a failure, or a cursor WeCom rejects, is retried from the last good one.

Sending (``kf/send_msg``) keeps to the window: at most 5 messages within 48 h of the user's
last message. A message that would break it is held (outbox status ``held``, with the reason)
and released when the user writes again; nothing is sent against the rule or dropped.
"""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.channels.base import Capability, Channel, DeliveryError, Held, cap_bytes
from bot.channels.wecom.api import WeComError
from bot.clock import Clock
from bot.locks import KeyedLocks
from bot.update import Update
from storage import kf, outbox
from storage.outbox import Claimed

if TYPE_CHECKING:
    from bot.channels.wecom.channel import WeComChannel

log = logging.getLogger("siyu.wecom.kf")
NAME = "wecom_kf"
FROM_USER = 3  # msg_list[].origin: 3 the WeChat user, 4 the system, 5 a servicer
DUPLICATE_MSGID = 95033
TEXT_BYTES = 2048
PAGE = 1000
OPTION = re.compile(r"^(\d{1,2})[ .、]\s*(\S.{0,63})$")


def _options(line: str) -> list[str] | None:
    """"1 买过/用过  2 还没有" (the flows' way: two spaces apart) → the options, or None."""
    parts = [p.strip() for p in re.split(r"\s{2,}", line.strip()) if p.strip()]
    options = []
    for n, part in enumerate(parts, 1):
        match = OPTION.match(part)
        if match is None or int(match.group(1)) != n:
            return None
        options.append(match.group(2).strip())
    return options if len(options) >= 2 else None


def as_menu(text: str) -> dict[str, Any] | None:
    """A question whose options are numbered ("1 买过/用过  2 还没有") as a 微信客服 menu: the user
    taps an option, and the tap arrives as a message with the option's text, which flows take
    as the answer. None when there are no options, or several may be chosen (多选)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        options = _options(line)
        if options is None:
            continue
        head = "\n".join(lines[:i])
        if "多选" in head:
            return None  # a tap answers with one option only
        menu: dict[str, Any] = {"head_content": head, "list": [
            {"type": "click", "click": {"id": str(n), "content": option}} for n, option in enumerate(options, 1)]}
        if tail := "\n".join(lines[i + 1:]):
            menu["tail_content"] = tail
        return menu
    return None


class KfSync:
    """Pulls an account's new messages and feeds them to the dispatcher."""

    def __init__(self, wecom: WeComChannel, clock: Clock) -> None:
        self.wecom = wecom
        self.clock = clock
        self._locks = KeyedLocks()

    async def pull(self, token: str, open_kfid: str) -> int:
        """Pull until WeCom has no more; returns the user messages fed."""
        db, dispatcher = self.wecom.db, self.wecom.dispatcher
        fed = 0
        async with self._locks.hold(open_kfid):  # one pull per account at a time: one cursor
            async with db.read() as session:
                cursor = await kf.cursor(session, open_kfid)
            while True:
                page = await self.wecom.api.call("kf/sync_msg", {"token": token, "open_kfid": open_kfid,
                                                                  "cursor": cursor, "limit": PAGE})
                for msg in page.get("msg_list") or []:
                    fed += await self._one(db, dispatcher, open_kfid, msg)
                cursor = str(page.get("next_cursor") or cursor)
                async with db.transaction() as session:
                    await kf.save_cursor(session, open_kfid, cursor, now=self.clock.now())
                if not page.get("has_more"):
                    return fed

    async def _one(self, db: Any, dispatcher: Any, open_kfid: str, msg: dict[str, Any]) -> int:
        user, msgid = msg.get("external_userid"), msg.get("msgid")
        if msg.get("origin") != FROM_USER or not user or not msgid:
            return 0
        try:
            at = datetime.fromtimestamp(int(msg.get("send_time") or 0), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            at = self.clock.now()
        async with db.transaction() as session:
            await kf.heard(session, str(user), open_kfid, at=self.clock.now())
            released = await outbox.release_held(session, channel=NAME, to=str(user), now=self.clock.now())
        if released:
            log.info("%d held message(s) to %s released: the user wrote again", released, user)
        text = (msg.get("text") or {}).get("content") if msg.get("msgtype") == "text" else None
        if not text:
            return 0  # images, voice ... are not understood yet; the window opened all the same
        await dispatcher.feed(Update(channel=NAME, key=f"{NAME}:{msgid}", sender=str(user), at=at,
                                     text=str(text).strip()))
        return 1


class KfChannel(Channel):
    """One-to-one with WeChat users through the WeCom app's 微信客服 accounts."""

    name = NAME
    capabilities = frozenset({Capability.RECEIVE_PRIVATE, Capability.SEND_PRIVATE})

    def __init__(self, wecom: WeComChannel, clock: Clock) -> None:
        self.wecom = wecom
        self.clock = clock
        self.rate_per_s = wecom.rate_per_s

    async def send(self, message: Claimed) -> None:
        if message.to is None:
            raise DeliveryError("微信客服 talks one-to-one only", retryable=False)
        async with self.wecom.db.transaction() as session:
            open_kfid, why = await kf.take_slot(session, message.to, now=self.clock.now())
        if why is not None:
            raise Held(why)
        body: dict[str, Any] = {"touser": message.to, "open_kfid": open_kfid, "msgid": f"siyu{message.id}"}
        menu = as_menu(message.text) if self.wecom.config.kf_menus else None
        if menu is not None:
            body |= {"msgtype": "msgmenu", "msgmenu": menu}
        else:
            body |= {"msgtype": "text", "text": {"content": cap_bytes(message.text, TEXT_BYTES)}}
        try:
            await self.wecom.api.call("kf/send_msg", body)
        except WeComError as exc:
            if exc.errcode == DUPLICATE_MSGID:
                return  # sent before (a retry after a lost answer): msgid is the idempotency key
            raise DeliveryError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after) from None
