"""A fake WeCom server API, and a builder of callbacks encrypted the way WeCom sends them.

Point siyu (``[wecom] api_base_url``) at ``FakeWeCom.base_url`` in tests: it checks tokens,
answers with WeCom's JSON and error codes, can be told to fail or be slow, and records every
request it got.

    async with FakeWeCom() as wecom:
        wecom.fail("message/send", 45009)          # the next call is rate limited
        ...
        assert wecom.calls("message/send")[0].body["text"]["content"] == "你好"
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer
from wechatpy.work.crypto import WeChatCrypto

from bot.testing.fake_attachments import attachments_problem
from bot.testing.fake_contacts import FakeContacts
from bot.testing.fake_kf import KfFake, kf_event
from bot.testing.fake_oauth import OAuthFake
from bot.testing.fake_transfers import TransfersMixin

__all__ = ["CallbackBuilder", "FakeWeCom", "kf_event"]

CGI = "/cgi-bin/"


@dataclass
class Recorded:
    endpoint: str  # e.g. "message/send"
    query: dict[str, str]
    body: dict[str, Any] | None
    at: float


@dataclass
class FakeGroup:
    chat_id: str
    owner: str
    name: str = ""
    members: list[str] = field(default_factory=list)
    member_version: str = "v0"


class FakeWeCom(KfFake, FakeContacts, TransfersMixin, OAuthFake):
    def __init__(self, *, corp_id: str = "ww-test-corp", secret: str = "test-secret", token_ttl: int = 7200) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.token_ttl = token_ttl
        self.requests: list[Recorded] = []
        self.groups: dict[str, FakeGroup] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._counter = itertools.count(1)
        self._failures: dict[str, list[int]] = {}
        self._delays: dict[str, float] = {}
        self._used_welcome_codes: set[str] = set()
        # The fake's clock in unix seconds (send_time, create_time): tests with a FakeClock set it.
        self.now: Callable[[], float] = time.time
        # Endpoint -> how many of its next calls are carried out but answered with a gateway
        # error, as when WeCom's answer is lost on the way back (the client cannot tell).
        self._lost_answers: dict[str, int] = {}
        self._init_kf()
        self._init_oauth()
        # Mass-send tasks by msgid as get_groupmsg_list_v2 lists them: creator, create_time, text.
        self.task_records: dict[str, dict[str, Any]] = {}
        # Group robots: key -> what they posted, and when (20 a minute, then 45009).
        self.robot_keys: set[str] = set()
        self.robot_posts: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        # Mass-send tasks by msgid: the owner and each target's status (0 until confirmed).
        self.tasks: dict[str, tuple[str, dict[str, int]]] = {}
        # Each task's attachments (link, miniprogram ... cards), by msgid, as WeCom got them.
        self.task_attachments: dict[str, list[dict[str, Any]]] = {}
        self._server: TestServer | None = None

    # -- programming it ----------------------------------------------------------------------

    def fail(self, endpoint: str, errcode: int, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` answer ``errcode`` (after the token check)."""
        self._failures.setdefault(endpoint, []).extend([errcode] * times)

    def lose_answers(self, endpoint: str, times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` are carried out, but their answer is lost:
        the client gets HTTP 502 and cannot tell whether the call took effect."""
        self._lost_answers[endpoint] = self._lost_answers.get(endpoint, 0) + times

    def delay(self, endpoint: str, seconds: float) -> None:
        """Answer ``endpoint`` only after ``seconds`` (to hit client timeouts)."""
        self._delays[endpoint] = seconds

    def expire_tokens(self) -> None:
        """Every issued token is now expired (42001), as WeCom may do at any time."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def revoke_tokens(self) -> None:
        """Every issued token is now unknown (40014)."""
        self._tokens.clear()

    def add_group(self, chat_id: str, owner: str, members: list[str], name: str = "", version: str = "v0") -> FakeGroup:
        group = FakeGroup(chat_id, owner, name, list(members), version)
        self.groups[chat_id] = group
        return group

    def confirm_tasks(self, owner: str, *, status: int = 1, chats: list[str] | None = None) -> int:
        """The owner confirms their tasks in the client: their groups get ``status`` (1 sent,
        3 already got a mass message today ...). Returns how many targets changed."""
        changed = 0
        for sender, targets in self.tasks.values():
            if sender == owner:
                for chat in targets:
                    if chats is None or chat in chats:
                        targets[chat] = status
                        changed += 1
        return changed

    def calls(self, endpoint: str) -> list[Recorded]:
        return [r for r in self.requests if r.endpoint == endpoint]

    # -- serving -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        return str(self._server.make_url(CGI))

    async def __aenter__(self) -> FakeWeCom:
        app = web.Application()
        app.router.add_route("*", CGI + "{endpoint:.+}", self._handle)
        self._server = TestServer(app)
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        body: dict[str, Any] | None = None
        if request.can_read_body:
            try:
                body = json.loads(await request.read())
            except ValueError:
                return self._answer(47001, "data format error")
        self.requests.append(Recorded(endpoint, dict(request.query), body, time.monotonic()))
        if (delay := self._delays.get(endpoint)) is not None:
            await asyncio.sleep(delay)
        if endpoint == "gettoken":
            return self._gettoken(request.query)
        if endpoint == "webhook/send":  # a group robot: its key, not a token (wecom.md §3.9)
            return self._robot(request.query.get("key", ""), body or {})
        token = request.query.get("access_token", "")
        if not token:
            return self._answer(41001, "access_token missing")
        if token not in self._tokens:
            return self._answer(40014, "invalid access_token")
        if self._tokens[token] < time.monotonic():
            return self._answer(42001, "access_token expired")
        if self._failures.get(endpoint):
            return self._answer(self._failures[endpoint].pop(0), "programmed failure")
        handler = getattr(self, "_" + endpoint.replace("/", "_"), None)
        if handler is None:
            return self._answer(60011, f"no privilege to access/modify contact/party/agent ({endpoint})")
        answer: web.Response = handler(body or {})
        if self._lost_answers.get(endpoint):
            self._lost_answers[endpoint] -= 1
            return web.Response(status=502, text="Bad Gateway")
        return answer

    @staticmethod
    def _answer(errcode: int = 0, errmsg: str = "ok", **data: Any) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg, **data})

    def _gettoken(self, query: Any) -> web.Response:
        if self._failures.get("gettoken"):
            return self._answer(self._failures["gettoken"].pop(0), "programmed failure")
        if query.get("corpid") != self.corp_id or query.get("corpsecret") != self.secret:
            return self._answer(40001, "invalid credential")
        token = f"token-{next(self._counter)}"
        self._tokens[token] = time.monotonic() + self.token_ttl
        return self._answer(access_token=token, expires_in=self.token_ttl)

    def _message_send(self, body: dict[str, Any]) -> web.Response:
        if not body.get("touser") or body.get("msgtype") != "text":
            return self._answer(40003, "invalid userid / message")
        return self._answer(invaliduser="", invalidparty="", invalidtag="", msgid=f"msg-{next(self._counter)}")

    def _externalcontact_send_welcome_msg(self, body: dict[str, Any]) -> web.Response:
        code = str(body.get("welcome_code", ""))
        if not code or code.startswith("expired"):
            return self._answer(41050, "invalid welcome_code")
        if code in self._used_welcome_codes:
            return self._answer(41051, "externaluser has started chatting")
        self._used_welcome_codes.add(code)
        return self._answer()

    def _externalcontact_add_msg_template(self, body: dict[str, Any]) -> web.Response:
        if body.get("chat_type") == "group" and not body.get("sender"):
            return self._answer(40003, "sender required for group")
        chats = body.get("chat_id_list") or []
        if len(chats) > 2000:
            return self._answer(40058, "chat_id_list exceeds 2000")
        attachments = body.get("attachments") or []
        if (problem := attachments_problem(body.get("text"), attachments)) is not None:
            return self._answer(40058, problem)
        msgid = f"msgtpl-{next(self._counter)}"
        self.tasks[msgid] = (body.get("sender", ""), {c: 0 for c in chats})
        self.task_records[msgid] = {"msgid": msgid, "creator": body.get("sender", ""), "create_type": 0,
                                    "create_time": int(self.now()), "chat_type": body.get("chat_type") or "single",
                                    "text": body.get("text") or {}, "attachments": list(attachments)}
        self.task_attachments[msgid] = list(attachments)
        return self._answer(fail_list=[], msgid=msgid)

    def _externalcontact_get_groupmsg_list_v2(self, body: dict[str, Any]) -> web.Response:
        """The tasks created between start_time and end_time (at most a month apart), by creator."""
        try:
            start, end = int(body["start_time"]), int(body["end_time"])
        except (KeyError, TypeError, ValueError):
            return self._answer(40058, "start_time and end_time required")
        if end < start or end - start > 31 * 86400:
            return self._answer(40058, "invalid time range")
        found = [{k: v for k, v in t.items() if k != "chat_type"} for t in self.task_records.values()
                 if start <= t["create_time"] <= end and t["chat_type"] == (body.get("chat_type") or "single")
                 and (not body.get("creator") or t["creator"] == body["creator"])]
        return self._answer(group_msg_list=found, next_cursor="")

    def _externalcontact_get_groupmsg_send_result(self, body: dict[str, Any]) -> web.Response:
        task = self.tasks.get(body.get("msgid", ""))
        if task is None:
            return self._answer(41047, "invalid msgid")
        owner, targets = task
        if body.get("userid") != owner:
            return self._answer(send_list=[], next_cursor="")
        return self._answer(send_list=[{"chat_id": c, "userid": owner, "status": st} for c, st in targets.items()],
                            next_cursor="")

    def _robot(self, key: str, body: dict[str, Any]) -> web.Response:
        if key not in self.robot_keys:
            return self._answer(93000, "invalid webhook url")
        now = time.monotonic()
        posts = self.robot_posts.setdefault(key, [])
        if len([t for t, _ in posts if now - t < 60]) >= 20:
            return self._answer(45009, "api freq out of limit")
        if body.get("msgtype") not in ("text", "markdown") or not (body.get(body["msgtype"]) or {}).get("content"):
            return self._answer(40008, "invalid message type")
        posts.append((now, body))
        return self._answer()

    def _externalcontact_remind_groupmsg_send(self, body: dict[str, Any]) -> web.Response:
        if body.get("msgid") not in self.tasks:
            return self._answer(41047, "invalid msgid")
        return self._answer()


class CallbackBuilder:
    """Builds callbacks as WeCom sends them: query string and encrypted XML body (wechatpy)."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str, agent_id: int | None = None) -> None:
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._crypto = WeChatCrypto(token, encoding_aes_key, corp_id)
        self._nonce = itertools.count(1000)

    def encrypt(self, plaintext: str, *, timestamp: int | None = None,
                nonce: str | None = None) -> tuple[str, str, str, str]:
        """(encrypt, msg_signature, timestamp, nonce) for ``plaintext``."""
        from xml.etree import ElementTree  # our own output, not untrusted input

        ts = str(timestamp if timestamp is not None else int(time.time()))
        n = nonce or str(next(self._nonce))
        xml = ElementTree.fromstring(self._crypto.encrypt_message(plaintext, n, ts))
        return xml.findtext("Encrypt") or "", xml.findtext("MsgSignature") or "", ts, n

    def post(self, plaintext: str, *, timestamp: int | None = None) -> tuple[str, bytes]:
        """(path with query, body) of a POST callback carrying ``plaintext``."""
        encrypt, sig, ts, nonce = self.encrypt(plaintext, timestamp=timestamp)
        agent = f"<AgentID><![CDATA[{self.agent_id}]]></AgentID>" if self.agent_id is not None else ""
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>{agent}</xml>")
        return "/wecom/callback?" + urlencode({"msg_signature": sig, "timestamp": ts, "nonce": nonce}), body.encode()

    def verify_url(self, echo: str, *, timestamp: int | None = None) -> str:
        """The GET WeCom sends when the callback URL is saved; the answer must be ``echo``."""
        encrypt, sig, ts, nonce = self.encrypt(echo, timestamp=timestamp)
        return "/wecom/callback?" + urlencode({"msg_signature": sig, "timestamp": ts, "nonce": nonce,
                                               "echostr": encrypt})


def text_message(sender: str, content: str, msg_id: int, *, corp_id: str = "ww-test-corp",
                 at: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")


def contact_added(customer: str, staff: str, *, state: str | None = None, welcome_code: str | None = None,
                  at: int | None = None) -> str:
    extra = (f"<State><![CDATA[{state}]]></State>" if state else "") + (
        f"<WelcomeCode><![CDATA[{welcome_code}]]></WelcomeCode>" if welcome_code else "")
    return ("<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
            f"<UserID><![CDATA[{staff}]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID>{extra}</xml>")


def contact_deleted(customer: str, staff: str, *, by_customer: bool = True, at: int | None = None) -> str:
    change = "del_follow_user" if by_customer else "del_external_contact"
    return ("<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>"
            f"<UserID><![CDATA[{staff}]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID></xml>")


def chat_changed(chat_id: str, change: str, *, detail: str | None = None, members: Sequence[str] = (),
                 last_version: str = "", current_version: str = "", at: int | None = None) -> str:
    items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
    detail_xml = f"<UpdateDetail><![CDATA[{detail}]]></UpdateDetail>" if detail else ""
    return ("<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[{chat_id}]]></ChatId>"
            f"<ChangeType><![CDATA[{change}]]></ChangeType>{detail_xml}<JoinScene>0</JoinScene><QuitScene>0</QuitScene>"
            f"<MemChangeCnt>{len(members)}</MemChangeCnt><MemChangeList>{items}</MemChangeList>"
            f"<LastMemVer>{last_version}</LastMemVer><CurMemVer>{current_version}</CurMemVer></xml>")
