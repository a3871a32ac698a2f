"""微信客服 (wecom.md §3.11): the only way to talk one-to-one with WeChat users.

A ``kf_msg_or_event`` callback (same crypto, inbox and dedup as every WeCom callback) says
there is something to pull: ``kf/sync_msg`` pages from the cursor persisted per account, each
user message becomes a one-to-one update on channel ``wecom_kf`` keyed by its msgid (so a
page pulled twice handles nothing twice), and the cursor advances only after its page was
handled: a failure, or a cursor WeCom rejects, is retried from the last good one. Cursors are
WeCom's opaque strings, kept as they come. The first pull of an account (no cursor yet) would
return up to three days of history: it only takes the cursor (and the users' windows), unless
``[wecom] kf_replay_history``.

Sending (``kf/send_msg``) keeps to the window: at most 5 messages within 48 h of the user's
last message (developer.work.weixin.qq.com/document/path/94677, wecom.md §3.11), dated by that
message's ``send_time`` (msg_list[].send_time: silenceper/wechat:work/kf/syncmsg.go). A
message that would break it is held (outbox status ``held``, with the reason) and released when
the user writes again; nothing is sent against the rule or dropped.
"""
from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.channels.base import Capability, Channel, DeliveryError, Held, ProbablyDelivered, cap_bytes
from bot.channels.wecom.api import WeComError
from bot.clock import Clock
from bot.locks import KeyedLocks
from bot.update import Update
from storage import inbox, kf, outbox
from storage.outbox import Claimed

if TYPE_CHECKING:
    from bot.channels.wecom.channel import WeComChannel

log = logging.getLogger("siyu.wecom.kf")
NAME = "wecom_kf"
FROM_USER = 3  # msg_list[].origin: 3 the WeChat user, 4 the system, 5 a servicer
# Practitioners read 95033 as "msgid already used"; no public source confirms it (wecom.md
# §3.11), so it counts as "probably delivered" only after an attempt whose answer was lost.
# Nor can a send be checked afterwards: kf/sync_msg "不支持读取通过发送消息接口发送的消息"
# (wechatpy/wechatpy:wechatpy/work/client/api/kf.py, sync_msg).
DUPLICATE_MSGID = 95033
# kf/send_msg limits in bytes (developer.work.weixin.qq.com/document/path/94677;
# silenceper/wechat:work/kf/sendmsg/message.go): text content at most 2048; a msgmenu's
# head_content and tail_content at most 1024 each, a click item's content 1 to 128 and its
# id 1 to 64. WeCom refuses a menu past them: the question is lost and a window slot used.
TEXT_BYTES = 2048
MENU_TEXT_BYTES = 1024
MENU_ITEM_BYTES = 128
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


def _fits(text: str, limit: int) -> bool:
    return len(text.encode()) <= limit


def as_menu(text: str) -> dict[str, Any] | None:
    """A question whose options are numbered ("1 买过/用过  2 还没有") as a 微信客服 menu: the user
    taps an option, and the tap arrives as a message with the option's text, which flows take
    as the answer. None when there are no options, several may be chosen (多选), or the menu
    would be over WeCom's sizes: the question then goes as text, answered by number."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        options = _options(line)
        if options is None:
            continue
        head = "\n".join(lines[:i])
        if "多选" in head:
            return None  # a tap answers with one option only
        tail = "\n".join(lines[i + 1:])
        if not (_fits(head, MENU_TEXT_BYTES) and _fits(tail, MENU_TEXT_BYTES)
                and all(_fits(option, MENU_ITEM_BYTES) for option in options)):
            return None
        menu: dict[str, Any] = {"head_content": head, "list": [
            {"type": "click", "click": {"id": str(n), "content": option}} for n, option in enumerate(options, 1)]}
        if tail:
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
        fed = skipped = 0
        async with self._locks.hold(open_kfid):  # one pull per account at a time: one cursor
            async with db.read() as session:
                stored = await kf.cursor(session, open_kfid)
            # No cursor: WeCom answers from the earliest message of the last 3 days ("若不填，从3天内
            # 最早的消息开始返回", kf/sync_msg, developer.work.weixin.qq.com/document/path/94670;
            # silenceper/wechat:work/kf/syncmsg.go). Answering that history now would answer
            # days-old questions out of the blue: it is taken as read unless configured.
            replay = stored is not None or self.wecom.config.kf_replay_history
            cursor = stored or ""
            while True:
                page = await self.wecom.api.call("kf/sync_msg", {"token": token, "open_kfid": open_kfid,
                                                                  "cursor": cursor, "limit": PAGE})
                for msg in page.get("msg_list") or []:
                    n = await self._one(db, dispatcher, open_kfid, msg, feed=replay)
                    fed, skipped = (fed + n, skipped) if replay else (fed, skipped + n)
                cursor = str(page.get("next_cursor") or cursor)
                async with db.transaction() as session:
                    await kf.save_cursor(session, open_kfid, cursor, now=self.clock.now())
                if not page.get("has_more"):
                    break
        if skipped:
            log.info("微信客服 %s pulled for the first time: %d message(s) of history taken as read, not answered "
                     "([wecom] kf_replay_history = false)", open_kfid, skipped)
        return fed

    async def _one(self, db: Any, dispatcher: Any, open_kfid: str, msg: dict[str, Any], *, feed: bool) -> int:
        user, msgid = msg.get("external_userid"), msg.get("msgid")
        if msg.get("origin") != FROM_USER or not user or not msgid:
            return 0
        try:
            at = datetime.fromtimestamp(int(msg.get("send_time") or 0), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            at = self.clock.now()
        at = min(at, self.clock.now())  # a clock ahead of ours must not stretch the window
        text = (msg.get("text") or {}).get("content") if msg.get("msgtype") == "text" else None
        key = f"{NAME}:{msgid}"
        async with db.transaction() as session:
            if text and await inbox.seen(session, key):
                return 0  # pulled again (from an older cursor): handled, and its window counted, before
            # The window runs from the message's own send_time, not from the pull: history pulled
            # after an outage opens no fresh 48 h (an older message than the last changes nothing).
            moved = await kf.heard(session, str(user), open_kfid, at=at)
            released = await outbox.release_held(session, channel=NAME, to=str(user),
                                                 now=self.clock.now()) if moved else 0
        if released:
            log.info("%d held message(s) to %s released: the user wrote again", released, user)
        if not text:
            return 0  # images, voice ... are not understood yet; the window opened all the same
        if not feed:
            return 1
        await dispatcher.feed(Update(channel=NAME, key=key, sender=str(user), at=at,
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

    async def send(self, message: Claimed) -> ProbablyDelivered | None:
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
            if exc.errcode == DUPLICATE_MSGID and (exc.after_ambiguous or message.attempts > 1):
                # The same msgid went out before and its answer was lost: WeCom's refusal of the
                # repeat says the first got there, if 95033 means what practitioners say.
                return ProbablyDelivered(f"probably delivered: a retry after a lost answer was refused with "
                                         f"{exc.errcode} (msgid {body['msgid']} already used)")
            raise DeliveryError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after) from None
        return None
