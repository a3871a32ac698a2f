"""An async client for the WeCom server API endpoints siyu uses (wecom.md §3, §4).

Every call has a timeout. A refused token (40001/40014/42001) is refreshed once and the call
retried once; ``-1`` (system busy) and network errors are retried with backoff and jitter up to
``attempts`` times; 45009/45033 (rate limits) are not retried here but reported with
``retry_after`` of at least 60 s; content and permission errors are never retried. The token
and the secret never appear in logs or errors (they travel in the query string).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp

from bot.channels.wecom.tokens import TokenCache

log = logging.getLogger("siyu.wecom.api")

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
BUSY = -1
RATE_LIMITED = frozenset({45009, 45033})
RATE_LIMIT_BACKOFF_S = 60.0
NETWORK = -2  # ours: no answer (timeout, connection refused, a non-JSON or non-2xx answer)
# Failures after which WeCom may have done the call all the same: the answer, not the request,
# may be what was lost. -1 is "系统繁忙" (wechatpy/wechatpy:wechatpy/constants.py WeChatErrorCode).
AMBIGUOUS = frozenset({BUSY, NETWORK})
# How far back an ambiguous add_msg_template looks for the task it may have created: the
# outbox's retries of one row (backoff up to 5 minutes, a lease after a kill) end well within it.
TASK_LOOKBACK_S = 6 * 3600


class WeComError(Exception):
    """A call that failed for good. ``retryable`` says whether the outbox should try later."""

    def __init__(self, endpoint: str, errcode: int, errmsg: str, *, after_ambiguous: bool = False) -> None:
        super().__init__(f"{endpoint}: {errcode} {errmsg}")
        self.endpoint = endpoint
        self.errcode = errcode
        self.errmsg = errmsg
        # An earlier attempt of this call failed ambiguously (AMBIGUOUS): it may have taken effect,
        # so a refusal now ("code used", "msgid used") may be WeCom refusing the repeat.
        self.after_ambiguous = after_ambiguous

    @property
    def retryable(self) -> bool:
        return self.errcode in (BUSY, NETWORK) or self.errcode in RATE_LIMITED

    @property
    def retry_after(self) -> float | None:
        return RATE_LIMIT_BACKOFF_S if self.errcode in RATE_LIMITED else None


class WeComAPI:
    """Requires an open ``aiohttp.ClientSession``; ``base_url`` ends with ``/cgi-bin/``."""

    def __init__(
        self, session: aiohttp.ClientSession, *, base_url: str, corp_id: str, secret: str,
        tokens: TokenCache | None = None, timeout_s: float = 10.0, attempts: int = 3, backoff_s: float = 0.5,
    ) -> None:
        self.session = session
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.corp_id = corp_id
        self._secret = secret
        self.tokens = tokens
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.backoff_s = backoff_s

    async def fetch_token(self) -> tuple[str, int]:
        """``gettoken``: (access_token, expires_in). Used by the token cache only."""
        data = await self._request("GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret})
        if data.get("errcode", 0) != 0:
            raise WeComError("gettoken", int(data["errcode"]), str(data.get("errmsg", "")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    async def call(self, endpoint: str, body: dict[str, Any] | None = None, *, method: str = "POST",
                   retry_ambiguous: bool = True, query: dict[str, str] | None = None) -> dict[str, Any]:
        """``retry_ambiguous=False``: a -1 or network failure is raised at once, for calls that
        must not be repeated blindly (a repeat may do the thing twice). ``query``: a GET's
        parameters besides the token (kept out of the endpoint, so out of errors and logs)."""
        if self.tokens is None:
            raise RuntimeError("WeComAPI.call needs a token cache")
        refreshed = False
        attempt = 0
        ambiguous = False
        while True:
            try:
                token = await self.tokens.get()
            except WeComError as exc:  # gettoken itself was busy or unreachable: retried alike
                attempt += 1
                if exc.errcode in (BUSY, NETWORK) and attempt < self.attempts:
                    await self._pause("gettoken", exc.errcode, attempt)
                    continue
                raise
            try:
                data = await self._request(method, endpoint, params={**(query or {}), "access_token": token},
                                           json=body)
            except WeComError as exc:  # network: retried like -1
                data = {"errcode": exc.errcode, "errmsg": exc.errmsg}
            code = int(data.get("errcode", 0) or 0)
            if code == 0:
                return data
            if code in TOKEN_ERRORS and not refreshed:
                refreshed = True
                await self.tokens.invalidate(token)
                continue
            attempt += 1
            if code in AMBIGUOUS and retry_ambiguous and attempt < self.attempts:
                ambiguous = True
                await self._pause(endpoint, code, attempt)
                continue
            raise WeComError(endpoint, code, str(data.get("errmsg", "")), after_ambiguous=ambiguous)

    async def _pause(self, endpoint: str, code: int, attempt: int) -> None:
        delay = self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        log.info("%s: %s, retrying in %.2fs (attempt %d of %d)", endpoint, code, delay, attempt + 1, self.attempts)
        await asyncio.sleep(delay)

    async def _request(
        self, method: str, endpoint: str, *, params: dict[str, Any], json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self.session.request(
                method, self.base_url + endpoint, params=params, json=json, timeout=self.timeout,
            ) as resp:
                if resp.status >= 300:
                    raise WeComError(endpoint, NETWORK, f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            # str(exc) of aiohttp errors can carry the URL, and so the token: name the type only.
            raise WeComError(endpoint, NETWORK, f"no usable answer ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise WeComError(endpoint, NETWORK, "answer is not a JSON object")
        return data

    # -- the endpoints siyu uses --------------------------------------------------------------

    async def send_text(self, agent_id: int, user_ids: list[str], content: str) -> dict[str, Any]:
        """``message/send`` to internal members (not customers). Content at most 2048 bytes.

        No ``enable_duplicate_check``: WeCom compares content, so it would also drop a second,
        legitimate message that happens to read the same (two /help answers in half an hour)."""
        body: dict[str, Any] = {
            "touser": "|".join(user_ids), "agentid": agent_id, "msgtype": "text", "text": {"content": content},
            "safe": 0,
        }
        return await self.call("message/send", body)

    async def get_user_info(self, code: str) -> dict[str, Any]:
        """``auth/getuserinfo`` (GET, access token + ``code``): who a web-authorization code names
        (developer.work.weixin.qq.com/document/path/91023; 96442 for its fields). A company member
        comes back as ``userid``, anyone else as ``openid``, with ``external_userid`` when they are
        a customer whose staff member is within the app's visibility; older answers spell them
        ``UserId`` and ``OpenId``. A code is valid 5 minutes, once (40029 "invalid code" after):
        a call whose answer was lost is not repeated, since WeCom may have taken the code."""
        return await self.call("auth/getuserinfo", method="GET", query={"code": code}, retry_ambiguous=False)

    async def send_welcome_msg(self, welcome_code: str, content: str) -> dict[str, Any]:
        """Requires a welcome code at most 20 s old, used once. Content at most 4000 bytes."""
        return await self.call("externalcontact/send_welcome_msg",
                               {"welcome_code": welcome_code, "text": {"content": content}})

    async def add_group_msg_template(self, owner: str, chat_ids: list[str], content: str, *,
                                     attachments: list[dict[str, Any]] | None = None, now: float | None = None,
                                     look_first: bool = False) -> dict[str, Any]:
        """A mass-send task to customer groups: nothing is sent until ``owner`` confirms it.
        At most 2000 chat ids; content at most 4000 bytes; at most 9 ``attachments`` (link,
        miniprogram ...: wecom.md §3.4), left out when there are none.

        add_msg_template has no idempotency key (developer.work.weixin.qq.com/document/path/92135;
        silenceper/wechat:work/externalcontact/msg.go AddMsgTemplateRequest has none), so a
        call whose answer was lost (-1, network, timeout) may have created the task: before
        creating it again, and first of all when ``look_first`` (the outbox tries the row again
        after such a failure), the owner's tasks of the last hours are looked up and one with
        this content is adopted (``"adopted": True``) rather than a second made for the owner."""
        body: dict[str, Any] = {
            "chat_type": "group", "sender": owner, "chat_id_list": chat_ids, "text": {"content": content},
        }
        if attachments:
            body["attachments"] = attachments
        now = time.time() if now is None else now  # the channel passes its clock's
        for attempt in range(1, self.attempts + 1):
            if look_first or attempt > 1:
                found = await self.find_group_msg(owner, content, since=now - TASK_LOOKBACK_S, until=now + 3600)
                if found is not None:
                    log.warning("add_msg_template for %s: adopting task %s, created by a call whose answer was lost",
                                owner, found)
                    return {"msgid": found, "fail_list": [], "adopted": True}
            try:
                return await self.call("externalcontact/add_msg_template", body, retry_ambiguous=False)
            except WeComError as exc:
                if exc.errcode not in AMBIGUOUS or attempt >= self.attempts:
                    raise
                await self._pause("externalcontact/add_msg_template", exc.errcode, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def find_group_msg(self, creator: str, content: str, *, since: float, until: float) -> str | None:
        """The newest group task ``creator`` has with this text, created between ``since`` and
        ``until`` (unix seconds), or None. ``get_groupmsg_list_v2``: chat_type, start_time,
        end_time (at most a month apart), creator, filter_type (0: created by the company, as
        API tasks are), cursor; it answers group_msg_list[] of msgid, creator, create_time,
        text (document/path/93338; silenceper/wechat:work/externalcontact/msg.go)."""
        best: tuple[int, str] | None = None
        cursor = ""
        while True:
            page = await self.call("externalcontact/get_groupmsg_list_v2", {
                "chat_type": "group", "start_time": int(since), "end_time": int(until), "creator": creator,
                "filter_type": 0, "limit": 100, "cursor": cursor})
            for task in page.get("group_msg_list") or []:
                text = (task.get("text") or {}).get("content")
                if task.get("creator") == creator and text == content and task.get("msgid"):
                    at = int(task.get("create_time") or 0)
                    if best is None or at >= best[0]:
                        best = (at, str(task["msgid"]))
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return best[1] if best else None

    async def get_groupmsg_send_result(self, msgid: str, userid: str) -> list[dict[str, Any]]:
        """Every target of a mass-send task with its ``status`` (0 not sent, 1 sent, 2 not a
        friend, 3 already got a mass message), following ``next_cursor``."""
        results: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = await self.call("externalcontact/get_groupmsg_send_result",
                                   {"msgid": msgid, "userid": userid, "limit": 1000, "cursor": cursor})
            results += page.get("send_list") or []
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return results

    async def remind_groupmsg_send(self, msgid: str) -> dict[str, Any]:
        """Remind the owner of an unconfirmed task; WeCom allows about 3 in 24 h (wecom.md §3.5)."""
        return await self.call("externalcontact/remind_groupmsg_send", {"msgid": msgid})

    async def groupchat_get(self, chat_id: str) -> dict[str, Any]:
        return (await self.call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1}))["group_chat"]

    async def groupchat_list(self, owners: list[str] | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every group (following ``next_cursor``); requires ``owners`` past 1000 visible staff (81017)."""
        chats: list[dict[str, Any]] = []
        cursor = ""
        while True:
            body: dict[str, Any] = {"status_filter": 0, "limit": limit, "cursor": cursor}
            if owners:
                body["owner_filter"] = {"userid_list": owners}
            data = await self.call("externalcontact/groupchat/list", body)
            chats += data.get("group_chat_list", [])
            cursor = data.get("next_cursor") or ""
            if not cursor:
                return chats
