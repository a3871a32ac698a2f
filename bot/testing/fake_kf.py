"""The 微信客服 part of the fake WeCom server (``FakeWeCom`` inherits it): users writing to a
客服 account, ``kf/sync_msg`` with opaque cursors, ``kf/send_msg`` with its window, and the
callback that says there is something to pull, in its real shape."""
from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web


class KfFake:
    corp_id: str
    _counter: itertools.count[int]
    now: Callable[[], float]

    @staticmethod
    def _answer(errcode: int = 0, errmsg: str = "ok", **data: Any) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg, **data})

    def _init_kf(self) -> None:
        # 微信客服: users' messages (pulled by kf/sync_msg) and sends. Cursors are opaque
        # strings, as WeCom's are ("4gw7MepFLfgF2VC5npN"): each stands for a position.
        self.kf_messages: list[dict[str, Any]] = []
        self.kf_sent: list[dict[str, Any]] = []
        self.kf_bad_cursors: set[str] = set()
        self._kf_cursors: dict[str, int] = {}

    def kf_user_says(self, open_kfid: str, user: str, text: str, *, at: int | None = None) -> str:
        """A WeChat user writes to a 客服 account (at ``at``, default the fake's now); returns
        the msgid (pull it with a callback)."""
        msgid = f"kfmsg-{next(self._counter)}"
        sent = int(self.now()) if at is None else at
        self.kf_messages.append({"msgid": msgid, "open_kfid": open_kfid, "external_userid": user, "send_time": sent,
                                 "origin": 3, "msgtype": "text", "text": {"content": text}})
        return msgid

    def kf_to(self, user: str) -> list[str]:
        """What was sent to ``user``: texts, and menus as their head with the options numbered."""
        out = []
        for m in self.kf_sent:
            if m["touser"] != user:
                continue
            if m["msgtype"] == "msgmenu":
                menu = m["msgmenu"]
                out.append("\n".join([menu.get("head_content", ""), *(f"{i}. {o['click']['content']}"
                                                                        for i, o in enumerate(menu["list"], 1)),
                                       menu.get("tail_content", "")]).strip())
            else:
                out.append(m["text"]["content"])
        return out

    def kf_user_taps(self, open_kfid: str, user: str, option: str, menu_id: str) -> str:
        """The user taps a menu option: a text message with the option's content and its id."""
        msgid = self.kf_user_says(open_kfid, user, option)
        self.kf_messages[-1]["text"]["menu_id"] = menu_id
        return msgid

    def _kf_sync_msg(self, body: dict[str, Any]) -> web.Response:
        """open_kfid is optional (without it, every account's messages), as is the token, which
        siyu always passes (kf/sync_msg, document/path/94670)."""
        if not body.get("token"):
            return self._answer(95000, "invalid token")
        cursor = str(body.get("cursor") or "")
        if cursor in self.kf_bad_cursors or (cursor and cursor not in self._kf_cursors):
            return self._answer(95010, "invalid cursor")
        start, limit = self._kf_cursors.get(cursor, 0), int(body.get("limit") or 1000)
        mine = [m for m in self.kf_messages if m["open_kfid"] == body.get("open_kfid", m["open_kfid"])]
        page = mine[start:start + limit]
        return self._answer(msg_list=page, next_cursor=self._kf_cursor(start + len(page)),
                            has_more=int(start + len(page) < len(mine)))

    def _kf_cursor(self, position: int) -> str:
        """An opaque cursor for ``position`` (letters and digits, like "4gw7MepFLfgF2VC5npN")."""
        for cursor, at in self._kf_cursors.items():
            if at == position:
                return cursor
        cursor = hashlib.sha256(f"{self.corp_id}:{position}".encode()).hexdigest()[:8] + "MepFLfgF2VC5npN"
        self._kf_cursors[cursor] = position
        return cursor

    def _kf_send_msg(self, body: dict[str, Any]) -> web.Response:
        if any(m["msgid"] == body.get("msgid") for m in self.kf_sent):
            return self._answer(95033, "duplicate msgid")
        if body.get("msgtype") == "msgmenu" and not self._menu_fits(body.get("msgmenu") or {}):
            return self._answer(40058, "invalid msgmenu: content exceeds limit")
        heard = [i for i, m in enumerate(self.kf_messages) if m["external_userid"] == body.get("touser")]
        if not heard:
            return self._answer(95018, "send msg not allowed: no session")
        since = [m for m in self.kf_sent if m["touser"] == body["touser"] and m["_after"] == heard[-1]]
        if len(since) >= 5:
            return self._answer(95018, "send msg count exceed limit")
        self.kf_sent.append({**body, "_after": heard[-1]})
        return self._answer(msgid=body.get("msgid"))

    @staticmethod
    def _menu_fits(menu: dict[str, Any]) -> bool:
        """head/tail at most 1024 bytes, a click item's id 1-64 and content 1-128 bytes."""
        clicks = [item.get("click") or {} for item in menu.get("list") or []]
        return (_bytes(menu.get("head_content")) <= 1024 and _bytes(menu.get("tail_content")) <= 1024
                and all(1 <= _bytes(c.get("id")) <= 64 and 1 <= _bytes(c.get("content")) <= 128 for c in clicks))


def _bytes(value: Any) -> int:
    return len(str(value or "").encode())


def kf_event(open_kfid: str, token: str, *, corp_id: str = "ww-test-corp", at: int | None = None) -> str:
    """WeCom's word that a 客服 account has messages to pull (wecom.md §3.11), in its real shape:
    no FromUserName (silenceper/wechat:work/kf/callback.go, CallbackMessage)."""
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token>"
            f"<OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>")
