"""The ``wecom`` channel: a WeCom self-built app (自建应用) with 客户联系 permissions.

What it can do (DESIGN §3, wecom.md §0):
- hears internal members writing to the app (operators' commands) and contact and customer-group
  events; it does NOT hear what customers say in groups or one-to-one;
- answers internal members with ``message/send``;
- welcomes a new contact with ``send_welcome_msg`` (the code is valid 20 s, once);
- reaches a customer group only through an ``add_msg_template`` task that the group's owner
  must confirm in the WeCom client: such a message waits for a person (``awaiting_owner``);
- cannot write one-to-one to a customer at all (that is 微信客服, another channel).
"""
from __future__ import annotations

import logging
from datetime import datetime

import aiohttp
from aiohttp import web

from bot.appkeys import DB, DISPATCHER
from bot.channels.base import Capability, Channel, DeliveryError, HandedToOwner, ProbablyDelivered, cap_bytes
from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.attachments import attachments_of
from bot.channels.wecom.config import WecomConfig
from bot.channels.wecom.crypto import CallbackCrypto
from bot.channels.wecom.groups import GroupSync
from bot.channels.wecom.handover import Handovers
from bot.channels.wecom.inbound import CallbackEndpoint
from bot.channels.wecom.kf import KfChannel, KfSync
from bot.channels.wecom.messages import NAME, Inbound
from bot.channels.wecom.owner_tasks import OwnerTasks
from bot.channels.wecom.reassign import Reassign
from bot.channels.wecom.sync import DailySync, for_channel
from bot.channels.wecom.tokens import TokenCache, cache_key
from bot.clock import Clock
from bot.dispatcher import Dispatcher
from bot.jobs import Job
from bot.locks import KeyedLocks
from bot.metrics import CALLBACK_SECONDS
from storage import inbox
from storage.engine import Database
from storage.outbox import OWNER_TASK, WELCOME, Claimed

log = logging.getLogger("siyu.wecom")

# Content limits in bytes (wecom.md §3.4, §3.5, §3.7).
MESSAGE_BYTES = 2048
WELCOME_BYTES = 4000
TEMPLATE_BYTES = 4000
# WeCom answers these for a welcome code that is expired, used, or not ours to use: 41050
# invalid or expired, 41051 used ("externaluser has started chatting"; wecom.md §3.4, from
# developer.work.weixin.qq.com/document/path/92137: the code is valid 20 s and used once).
WELCOME_CODE_GONE = frozenset({41050, 41051})
WELCOME_CODE_USED = 41051


def is_external(user_id: str) -> bool:
    """External contacts' ids start with wm/wo; internal members' are the corp's own userids."""
    return user_id.startswith(("wm", "wo"))


class WeComChannel(Channel):
    name = NAME
    capabilities = frozenset({
        Capability.RECEIVE_PRIVATE, Capability.SEND_PRIVATE, Capability.WELCOME_MEMBER, Capability.SEND_OWNER_TASK,
        Capability.GROUP_CARDS, Capability.TRANSFER_CONTACTS,
    })
    # Far under WeCom's 10,000 calls a minute per API: the quota is the corp's, not siyu's alone.
    rate_per_s = 20.0

    def __init__(self, config: WecomConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.crypto = CallbackCrypto(config.token, config.encoding_aes_key, config.corp_id)
        self._endpoint: CallbackEndpoint | None = None
        self._http: aiohttp.ClientSession | None = None
        self._group_locks = KeyedLocks()
        self.owner_tasks: OwnerTasks | None = None
        self.handovers: Handovers | None = None
        self.kf_sync: KfSync | None = None
        self.kf_channel: KfChannel | None = None  # set by the app when [wecom] kf is on
        self.daily_sync: DailySync | None = None
        self.api: WeComAPI
        self.groups: GroupSync
        self.reassign: Reassign
        self._db: Database
        self._dispatcher: Dispatcher

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/wecom/callback", self._get)
        app.router.add_post("/wecom/callback", self._post)

    async def start(self, app: web.Application) -> None:
        self._db, self._dispatcher = app[DB], app[DISPATCHER]
        self._http = aiohttp.ClientSession()
        settings = self.config
        self.api = WeComAPI(self._http, base_url=settings.api_base_url, corp_id=settings.corp_id,
                            secret=settings.secret)
        self.api.tokens = TokenCache(self._db, self.clock, cache_key(settings.corp_id, settings.secret),
                                     self.api.fetch_token)
        self.groups = GroupSync(self._db, self.api, self.clock)
        self.owner_tasks = OwnerTasks(self._db, self.api, self.clock, self.config.group_quota)
        self.reassign = Reassign(self._db, self.api, self.clock)
        self.handovers = Handovers(self._db, self.api, self.clock, self.reassign)
        if self.config.kf:
            self.kf_sync = KfSync(self, self.clock)
        if self.config.sync_every_h:
            http, tokens = self._http, self.api.tokens
            self.daily_sync = DailySync(lambda: for_channel(self._db, http, settings, self.clock, tokens=tokens),
                                        self._db, self.config.sync_every_h)
        self._endpoint = CallbackEndpoint(
            self.crypto, self._db, self.clock, replay_window_s=self.config.replay_window_s, handle=self.handle,
            workers=self.config.handling_workers,
        )
        await self._endpoint.start()

    async def stop(self) -> None:
        if self.daily_sync is not None:
            await self.daily_sync.stop()
        if self._endpoint is not None:
            await self._endpoint.stop()
        if self._http is not None:
            await self._http.close()

    def jobs(self) -> list[Job]:
        jobs = [self.owner_tasks.job()] if self.owner_tasks is not None else []
        jobs += [self.handovers.job()] if self.handovers is not None else []
        return jobs + ([self.daily_sync.job()] if self.daily_sync is not None else [])

    @property
    def db(self) -> Database:
        return self._db

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def endpoint(self) -> CallbackEndpoint:
        if self._endpoint is None:
            raise web.HTTPServiceUnavailable(reason="starting")
        return self._endpoint

    async def _get(self, request: web.Request) -> web.Response:
        with CALLBACK_SECONDS.labels("GET").time():
            return await self.endpoint.get(request)

    async def _post(self, request: web.Request) -> web.Response:
        # The time WeCom waits for its answer (5 s at most): handling comes after it.
        with CALLBACK_SECONDS.labels("POST").time():
            return await self.endpoint.post(request)

    # -- handling a stored callback ---------------------------------------------------------

    async def handle(self, message: Inbound) -> None:
        """Feed the callback's updates to the dispatcher, then apply its group change. Events of
        one group are applied in turn, so version checks see each other's results."""
        if message.kf is not None:
            if self.kf_sync is None:
                log.warning("a 微信客服 callback, but [wecom] kf is off: its messages are not pulled")
            else:
                await self.kf_sync.pull(*message.kf)
        chat = message.group_change.chat_id if message.group_change else None
        async with self._group_locks.hold(chat or message.key):
            for update in message.updates:
                await self._dispatcher.feed(update)
            if message.group_change is not None:
                await self.groups.apply(message.group_change)
                if message.group_change.detail == "change_owner":
                    # Tasks waiting for the old owner are withdrawn and packed again for the new.
                    await self.reassign.reconcile([message.group_change.chat_id])
        if message.staff_left is not None:
            await self.reassign.staff_left(message.staff_left)
        if not any(u.key == message.key for u in message.updates):
            # No update carried the row's own key, so the dispatcher did not close it.
            async with self._db.transaction() as session:
                await inbox.mark_handled(session, message.key, now=self.clock.now())

    # -- sending ----------------------------------------------------------------------------

    async def send(self, message: Claimed) -> HandedToOwner | ProbablyDelivered | None:
        try:
            if message.kind == WELCOME:
                return await self._send_welcome(message)
            elif message.kind == OWNER_TASK:
                return await self._send_group_task(message)
            elif message.chat is not None:
                return await self._send_to_group(message)
            elif message.to is not None:
                return await self._send_to_member(message)
            else:
                raise DeliveryError("a message with neither chat nor recipient", retryable=False)
        except WeComError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable, retry_after=exc.retry_after) from None
        return None

    async def _send_welcome(self, message: Claimed) -> ProbablyDelivered | None:
        code = message.meta.get("welcome_code")
        expires = message.meta.get("expires_at")
        if not code:
            raise DeliveryError("welcome without a welcome code", retryable=False)
        if expires and self.clock.now() > datetime.fromisoformat(expires):
            raise DeliveryError("welcome code expired (valid 20 s): the welcome was not sent", retryable=False)
        try:
            await self.api.send_welcome_msg(code, cap_bytes(message.text, WELCOME_BYTES))
        except WeComError as exc:
            if exc.errcode == WELCOME_CODE_USED and (exc.after_ambiguous or message.attempts > 1):
                # This very code was sent before and its answer lost (an earlier attempt of this
                # call, or of this row: a row is tried again only after a -1, a network error or a
                # timeout, since a rate limit's minute outlives the code's 20 s). WeCom takes a
                # code once, so the refusal most likely means the first attempt went through.
                return ProbablyDelivered(f"probably delivered: a retry after a lost answer was refused with "
                                         f"{exc.errcode} (welcome code already used): the first attempt went out")
            if exc.errcode in WELCOME_CODE_GONE:
                raise DeliveryError(f"welcome code unusable ({exc.errcode} {exc.errmsg}); is a welcome message "
                                    "configured in the WeCom admin console?", retryable=False) from None
            raise
        return None

    async def _send_to_member(self, message: Claimed) -> ProbablyDelivered | None:
        assert message.to is not None
        if is_external(message.to):
            if self.kf_channel is not None:
                # The app cannot write to a customer; 微信客服 can, within its window (the same
                # external_userid): the message goes that way, or is held there.
                return await self.kf_channel.send(message)
            raise DeliveryError(
                "the WeCom app cannot write one-to-one to a customer; turn on [wecom] kf (微信客服)", retryable=False,
            )
        if self.config.agent_id is None:
            raise DeliveryError("[wecom] agent_id is not set", retryable=False)
        result = await self.api.send_text(self.config.agent_id, [message.to], cap_bytes(message.text, MESSAGE_BYTES))
        if result.get("invaliduser"):
            raise DeliveryError(f"WeCom does not know member {message.to} (invaliduser)", retryable=False)
        return None

    async def _send_group_task(self, message: Claimed) -> HandedToOwner:
        """A broadcast's digest to several groups of one owner: one task for all of them."""
        chat_ids = list(message.meta.get("chat_ids") or [])
        if not message.to or not chat_ids:
            raise DeliveryError("a group task needs an owner and its groups", retryable=False)
        result = await self.api.add_group_msg_template(
            message.to, chat_ids, cap_bytes(message.text, TEMPLATE_BYTES), attachments=attachments_of(message.meta),
            now=self.clock.now().timestamp(),
            look_first=message.attempts > 1)  # tried before: the task may exist (a lost answer)
        return HandedToOwner({"msgid": result.get("msgid"), "owner": message.to,
                              "fail_list": result.get("fail_list") or [], "adopted": bool(result.get("adopted"))})

    async def _send_to_group(self, message: Claimed) -> HandedToOwner:
        assert message.chat is not None
        owner = await self.groups.owner_of(message.chat)
        if owner is None:
            raise DeliveryError(f"group {message.chat} has no known owner to confirm the task", retryable=False)
        result = await self.api.add_group_msg_template(
            owner, [message.chat], cap_bytes(message.text, TEMPLATE_BYTES), attachments=attachments_of(message.meta),
            now=self.clock.now().timestamp(), look_first=message.attempts > 1)
        # Nothing is sent yet: the owner must confirm the task in the WeCom client.
        return HandedToOwner({"msgid": result.get("msgid"), "owner": owner})
