"""The fake WeCom's 客户联系 lists: staff with the customer-contact feature, their customers page
by page, and customer groups, served as WeCom serves them (``FakeWeCom`` inherits this).

Cursors are opaque strings like a real one ("4gw7MepFLfgF2VC5npN"), never offsets a client
could compute; an unknown cursor is refused. Shapes, limits and codes, with their sources:

- ``externalcontact/get_follow_user_list`` (GET) → ``follow_user``: the staff userids
  (developer.work.weixin.qq.com/document/path/92571; wechatpy/wechatpy:wechatpy/work/client/api/
  external_contact.py ``get_follow_user_list``).
- ``externalcontact/batch/get_by_user`` (POST ``userid_list`` of at most 100, ``cursor``,
  ``limit`` at most 100, default 50, larger taken as 100) → ``external_contact_list`` of
  ``{external_contact, follow_info}`` and ``next_cursor`` ("" on the last page)
  (document/path/92994; silenceper/wechat:work/externalcontact/external_user.go
  ``BatchGetExternalUserDetailsRequest``; wechatpy ``batch_get_by_user``: "最大值100，默认值50，
  超过最大值时取最大值"). The older single ``userid`` is accepted too.
- ``externalcontact/groupchat/list`` (``status_filter``, ``owner_filter.userid_list``, ``cursor``,
  ``limit`` 1..1000) → ``group_chat_list`` of ``{chat_id, status}`` and ``next_cursor``; 81017
  without ``owner_filter`` past 1000 visible staff; ``groupchat/get`` (``chat_id``,
  ``need_name``) → ``group_chat`` with ``member_list`` (type 1 staff, 2 customer; ``name`` only
  with ``need_name``) (document/path/92120, 92122; wechatpy ``get_group_chat_list``; wecom.md §3.6).
"""
from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

FOLLOW = "externalcontact/get_follow_user_list"
BY_USER = "externalcontact/batch/get_by_user"
GROUP_LIST = "externalcontact/groupchat/list"
GROUP_GET = "externalcontact/groupchat/get"
ENDPOINTS = ("gettoken", FOLLOW, BY_USER, GROUP_LIST, GROUP_GET)
BAD_CURSOR = 40058  # 不合法的参数 (the fake's choice: no public source names a code for a bad cursor)
JOINED = 1_600_000_000


class FakeContacts:
    """State and handlers; ``FakeWeCom`` supplies ``groups``, ``_delays`` and the token check."""

    groups: dict[str, Any]
    _delays: dict[str, float]

    @property
    def _c(self) -> dict[str, Any]:
        # FakeWeCom's __init__ is not ours to edit: the state is made on first use.
        return self.__dict__.setdefault("_contacts_state", {
            "staff": [], "customers": {}, "names": {}, "joined": {}, "cursors": {}, "calls": {}, "fail_at": {},
        })

    # -- programming it ----------------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        """Answer the token and every 客户联系 list call only after ``seconds`` (a real network)."""
        for endpoint in ENDPOINTS:
            self._delays[endpoint] = seconds

    def add_staff(self, userid: str) -> None:
        if userid not in self._c["staff"]:
            self._c["staff"].append(userid)
            self._c["customers"].setdefault(userid, [])

    def add_customer(self, staff: str, external_userid: str, *, name: str = "", createtime: int = JOINED,
                     state: str = "", remark: str = "") -> None:
        """``staff`` has ``external_userid`` as a contact (added at ``createtime`` by channel code ``state``)."""
        self.add_staff(staff)
        mine = self._c["customers"][staff]
        mine[:] = [c for c in mine if c[0] != external_userid]
        mine.append((external_userid, name, createtime, state, remark))
        if name:
            self._c["names"][external_userid] = name

    def remove_customer(self, staff: str, external_userid: str) -> None:
        mine = self._c["customers"].get(staff, [])
        mine[:] = [c for c in mine if c[0] != external_userid]

    def name(self, userid: str, name: str) -> None:
        self._c["names"][userid] = name

    def fail_at(self, endpoint: str, nth: int, errcode: int, times: int = 1) -> None:
        """The ``nth`` call of ``endpoint`` from now (1 = the next) and the ``times - 1`` after it
        answer ``errcode``: a failure in the middle of a sync."""
        done = self._c["calls"].get(endpoint, 0)
        self._c["fail_at"].setdefault(endpoint, {}).update({n: errcode for n in range(done + nth, done + nth + times)})

    def contact_calls(self, endpoint: str) -> int:
        """How many times ``endpoint`` was answered (after the token check)."""
        return int(self._c["calls"].get(endpoint, 0))

    # -- serving -----------------------------------------------------------------------------

    @staticmethod
    def _ok(errcode: int = 0, errmsg: str = "ok", **data: Any) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg, **data})

    def _count(self, endpoint: str) -> int | None:
        """Count the call; the programmed error code for it, if any."""
        n = self._c["calls"][endpoint] = self._c["calls"].get(endpoint, 0) + 1
        code: int | None = self._c["fail_at"].get(endpoint, {}).pop(n, None)
        return code

    def _page(self, scope: str, items: list[Any], cursor: str, limit: int) -> tuple[list[Any], str] | None:
        """A page of ``items`` after ``cursor`` and the opaque cursor of the next (None: bad cursor)."""
        start = 0
        if cursor:
            where = self._c["cursors"].get(cursor)
            if where is None or where[0] != scope:
                return None
            start = where[1]
        page = items[start:start + limit]
        if start + limit >= len(items):
            return page, ""
        token = secrets.token_urlsafe(14)
        self._c["cursors"][token] = (scope, start + limit)
        return page, token

    def _externalcontact_get_follow_user_list(self, body: dict[str, Any]) -> web.Response:
        if (code := self._count(FOLLOW)) is not None:
            return self._ok(code, "programmed failure")
        return self._ok(follow_user=list(self._c["staff"]))

    def _externalcontact_batch_get_by_user(self, body: dict[str, Any]) -> web.Response:
        if (code := self._count(BY_USER)) is not None:
            return self._ok(code, "programmed failure")
        users = body.get("userid_list") or ([body["userid"]] if body.get("userid") else [])
        if not isinstance(users, list) or not users or len(users) > 100:
            return self._ok(40058, "userid_list must hold 1 to 100 userids")
        unknown = [u for u in users if u not in self._c["customers"]]
        if unknown:
            return self._ok(60011, f"no privilege to access user {unknown[0]} (not a follow user)")
        limit = min(max(int(body.get("limit") or 50), 1), 100)
        rows = [(u, c) for u in users for c in self._c["customers"][u]]
        found = self._page("by_user:" + ",".join(users), rows, str(body.get("cursor") or ""), limit)
        if found is None:
            return self._ok(BAD_CURSOR, "invalid cursor")
        page, cursor = found
        return self._ok(external_contact_list=[{
            # A customer has one WeChat name, whichever staff member's list shows them.
            "external_contact": {"external_userid": e, "name": self._c["names"].get(e, name), "type": 1,
                                 "gender": 0, "avatar": ""},
            "follow_info": {"userid": u, "remark": remark, "description": "", "createtime": at, "tag_id": [],
                            "state": state, "add_way": 1, "oper_userid": u},
        } for u, (e, name, at, state, remark) in page], next_cursor=cursor)

    def _externalcontact_groupchat_list(self, body: dict[str, Any]) -> web.Response:
        if (code := self._count(GROUP_LIST)) is not None:
            return self._ok(code, "programmed failure")
        owners = ((body.get("owner_filter") or {}).get("userid_list")) or []
        if not owners and len(self._c["staff"]) > 1000:
            return self._ok(81017, "visible range over 1000 users: owner_filter required")
        limit = min(max(int(body.get("limit") or 100), 1), 1000)
        chats = [g for g in self.groups.values() if not owners or g.owner in owners]
        found = self._page("groups:" + ",".join(owners), chats, str(body.get("cursor") or ""), limit)
        if found is None:
            return self._ok(BAD_CURSOR, "invalid cursor")
        page, cursor = found
        return self._ok(group_chat_list=[{"chat_id": g.chat_id, "status": 0} for g in page], next_cursor=cursor)

    def _externalcontact_groupchat_get(self, body: dict[str, Any]) -> web.Response:
        if (code := self._count(GROUP_GET)) is not None:
            return self._ok(code, "programmed failure")
        group = self.groups.get(str(body.get("chat_id")))
        if group is None:
            return self._ok(40050, "chatid not exist")
        names = self._c["names"] if body.get("need_name") else {}
        members = [{"userid": m, "type": 2 if m.startswith(("wm", "wo")) else 1,
                    "join_time": self._c["joined"].get((group.chat_id, m), JOINED), "join_scene": 1,
                    "invitor": {"userid": group.owner}, "group_nickname": "",
                    **({"name": names.get(m, "")} if body.get("need_name") else {})} for m in group.members]
        return self._ok(group_chat={
            "chat_id": group.chat_id, "name": group.name, "owner": group.owner, "create_time": JOINED, "notice": "",
            "member_list": members, "admin_list": [], "member_version": group.member_version,
        })


def contact_removed(customer: str, staff: str, *, by_customer: bool = False, source: str | None = None,
                    at: int = JOINED) -> str:
    """A del_external_contact (the staff member deleted the customer) or, ``by_customer``, a
    del_follow_user callback, with ``Source`` (``DELETE_BY_TRANSFER`` for a handover) when given
    (developer.work.weixin.qq.com/document/path/92130, wecom.md §3.1)."""
    change = "del_follow_user" if by_customer else "del_external_contact"
    extra = f"<Source><![CDATA[{source}]]></Source>" if source else ""
    return ("<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>"
            f"<UserID><![CDATA[{staff}]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID>{extra}</xml>")
