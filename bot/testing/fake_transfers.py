"""The fake WeCom's 在职/离职继承 endpoints and 停止企业群发, mixed into ``FakeWeCom``.

Shapes and error codes as the SDKs cited in ``bot.channels.wecom.transfers`` read them. A
customer handed over waits (status 2) until the test says how it ended (``takeover``):
in WeCom the customer has 24 h to refuse.

    wecom.customers["zhangsan"] = ["wm1", "wm2"]
    wecom.departed.add("zhangsan")              # for 离职继承
    ... a handover runs ...
    wecom.takeover("wm2", 3)                    # wm2 refused
"""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

# 84061: not an external contact of this staff member (wecom.md §4.2); 90500: the owner of the
# group has not left, for groupchat/transfer (ArtisanCloud/PowerWeChat responseGroupChatTransfer.go);
# 40050: no such chat (as groupchat/get answers); 41047: invalid msgid (wecom.md §4.2).
NOT_A_CONTACT, NOT_RESIGNED, NO_CHAT, BAD_MSGID = 84061, 90500, 40050, 41047


class TransfersMixin:
    """State: ``customers`` (staff → external_userids), ``departed`` (staff who left),
    ``transfers`` ((handover, takeover) → {customer: status}), ``cancelled`` (msgids)."""

    groups: dict[str, Any]
    tasks: dict[str, tuple[str, dict[str, int]]]
    requests: list[Any]

    def _transfer_state(self) -> None:
        # FakeWeCom.__init__ is not ours to change (other endpoints' state lives there): made on first use.
        if "_customers" not in self.__dict__:
            self._customers: dict[str, list[str]] = {}
            self._departed: set[str] = set()
            self._transfers: dict[tuple[str, str], dict[str, int]] = {}
            self._cancelled: list[str] = []

    @property
    def customers(self) -> dict[str, list[str]]:
        self._transfer_state()
        return self._customers

    @property
    def departed(self) -> set[str]:
        self._transfer_state()
        return self._departed

    @property
    def transfers(self) -> dict[tuple[str, str], dict[str, int]]:
        self._transfer_state()
        return self._transfers

    @property
    def cancelled(self) -> list[str]:
        self._transfer_state()
        return self._cancelled

    def takeover(self, customer: str, status: int = 1) -> None:
        """How a waiting transfer of ``customer`` ended (1 接替完毕, 3 客户拒绝, 4 达到上限)."""
        for (handover, takeover), waiting in self.transfers.items():
            if waiting.get(customer) == 2:
                waiting[customer] = status
                if status == 1:
                    self.customers[handover].remove(customer)
                    self.customers.setdefault(takeover, []).append(customer)

    @staticmethod
    def _reply(errcode: int = 0, errmsg: str = "ok", **data: Any) -> web.Response:
        return web.json_response({"errcode": errcode, "errmsg": errmsg, **data})

    def _externalcontact_list(self, body: dict[str, Any]) -> web.Response:
        staff = self.requests[-1].query.get("userid", "")  # a GET: the staff member is in the query
        if staff in self.departed or staff not in self.customers:
            return self._reply(NOT_A_CONTACT, "not external contact")
        return self._reply(external_userid=list(self.customers[staff]))

    def _externalcontact_get_unassigned_list(self, body: dict[str, Any]) -> web.Response:
        info = [{"handover_userid": s, "external_userid": c, "dimission_time": 1}
                for s in sorted(self.departed) for c in self.customers.get(s, [])]
        start = int(body.get("cursor") or 0) if str(body.get("cursor") or "0").isdigit() else 0
        size = int(body.get("page_size") or 1000)
        page, end = info[start:start + size], start + size
        return self._reply(info=page, is_last=end >= len(info), next_cursor=str(end) if end < len(info) else "")

    def _move_customers(self, body: dict[str, Any], *, resigned: bool) -> web.Response:
        handover, takeover = str(body.get("handover_userid")), str(body.get("takeover_userid"))
        wanted = list(body.get("external_userid") or [])
        if not wanted or len(wanted) > 100:
            return self._reply(40058, "external_userid: 1 to 100")
        if resigned != (handover in self.departed):
            # WeCom's code for 离职继承 of a serving staff member (or the reverse) is not confirmed by
            # a public source; 84061 (not their external contact) stands for it here.
            return self._reply(NOT_A_CONTACT, "handover user status mismatch")
        waiting = self.transfers.setdefault((handover, takeover), {})
        answer = []
        for c in wanted:
            ok = c in self.customers.get(handover, [])
            if ok:
                waiting[c] = 2
            answer.append({"external_userid": c, "errcode": 0 if ok else NOT_A_CONTACT})
        return self._reply(customer=answer)

    def _externalcontact_transfer_customer(self, body: dict[str, Any]) -> web.Response:
        return self._move_customers(body, resigned=False)

    def _externalcontact_resigned_transfer_customer(self, body: dict[str, Any]) -> web.Response:
        return self._move_customers(body, resigned=True)

    def _results(self, body: dict[str, Any]) -> web.Response:
        waiting = self.transfers.get((str(body.get("handover_userid")), str(body.get("takeover_userid"))), {})
        return self._reply(customer=[{"external_userid": c, "status": s, "takeover_time": 1}
                                     for c, s in waiting.items()], next_cursor="")

    def _externalcontact_transfer_result(self, body: dict[str, Any]) -> web.Response:
        return self._results(body)

    def _externalcontact_resigned_transfer_result(self, body: dict[str, Any]) -> web.Response:
        return self._results(body)

    def _move_groups(self, body: dict[str, Any], *, resigned: bool) -> web.Response:
        chats, owner = list(body.get("chat_id_list") or []), str(body.get("new_owner") or "")
        if not chats or len(chats) > 100 or not owner:
            return self._reply(40058, "chat_id_list: 1 to 100, and new_owner")
        failed = []
        for chat in chats:
            group = self.groups.get(chat)
            if group is None:
                failed.append({"chat_id": chat, "errcode": NO_CHAT, "errmsg": "chatid not exist"})
            elif resigned and group.owner not in self.departed:
                failed.append({"chat_id": chat, "errcode": NOT_RESIGNED, "errmsg": "the owner of this chat is not "
                                                                                 "resigned"})
            else:
                group.owner = owner
        return self._reply(failed_chat_list=failed)

    def _externalcontact_groupchat_transfer(self, body: dict[str, Any]) -> web.Response:
        return self._move_groups(body, resigned=True)

    def _externalcontact_groupchat_onjob_transfer(self, body: dict[str, Any]) -> web.Response:
        return self._move_groups(body, resigned=False)

    def _externalcontact_cancel_groupmsg_send(self, body: dict[str, Any]) -> web.Response:
        msgid = str(body.get("msgid") or "")
        if msgid not in self.tasks:
            return self._reply(BAD_MSGID, "invalid msgid")
        self.cancelled.append(msgid)
        del self.tasks[msgid]  # its owner can no longer confirm it
        return self._reply()


def staff_deleted(staff: str, *, corp_id: str = "ww-test-corp", at: int | None = None) -> str:
    """WeCom's 删除成员事件 (change_contact / delete_user): ``staff`` left the company."""
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{at or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[delete_user]]></ChangeType>"
            f"<UserID><![CDATA[{staff}]]></UserID></xml>")
