"""The WeCom endpoints of 在职继承 / 离职继承 (handing a staff member's customers and groups to
another) and of withdrawing a mass-send task, each checked against public SDKs:

- silenceper/wechat:work/externalcontact/transfer.go: ``transfer_customer`` (document 92125),
  ``transfer_result`` (94088), ``groupchat/onjob_transfer`` (95703), ``get_unassigned_list``
  (92124), ``resigned/transfer_customer`` (94081), ``resigned/transfer_result`` (94082),
  ``groupchat/transfer`` (92127): bodies ``handover_userid``, ``takeover_userid``,
  ``external_userid`` [...], ``transfer_success_msg`` (在职 only); answers ``customer`` [{external_userid,
  errcode}], ``failed_chat_list`` [{chat_id, errcode, errmsg}], ``next_cursor``.
- silenceper/wechat:work/externalcontact/msg.go: ``cancel_groupmsg_send`` {msgid} (停止企业群发,
  document 97611).
- binarywang/WxJava:weixin-java-cp/src/main/java/me/chanjar/weixin/cp/constant/WxCpApiPathConsts.java:
  TRANSFER_CUSTOMER, TRANSFER_RESULT, RESIGNED_TRANSFER_CUSTOMER, RESIGNED_TRANSFER_RESULT,
  GROUP_CHAT_TRANSFER, GROUP_CHAT_ONJOB_TRANSFER, LIST_UNASSIGNED_CONTACT, CANCEL_GROUP_MSG_SEND: the same
  paths; .../bean/external/WxCpUserTransferResultResp.java: transfer status 1 接替完毕, 2 等待接替,
  3 客户拒绝, 4 接替成员客户达到上限, 5 无接替记录.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.channels.wecom.api import BUSY, NETWORK, WeComAPI

# At most 100 customers, and 100 groups, a call (WxJava WxCpUserTransferCustomerReq.java: "每次最多分配
# 100个客户"; WxCpExternalContactService.java transferGroupChat: chatIds "取值范围： 1 ~ 100").
BATCH = 100
# transfer_result's status → (our item status, the reason's code, which operators read in Chinese).
TAKEOVER = {1: ("done", None), 2: ("waiting", None), 3: ("refused", "customer_refused"),
            4: ("failed", "takeover_limit"), 5: ("failed", "no_record")}


async def cancel_groupmsg_send(api: WeComAPI, msgid: str) -> None:
    """Withdraw a mass-send task its owner has not confirmed (停止企业群发)."""
    await api.call("externalcontact/cancel_groupmsg_send", {"msgid": msgid})


async def customers_of(api: WeComAPI, staff: str) -> list[str]:
    """``externalcontact/list?userid=``: the external_userids of a staff member's customers."""
    data = await api.call(f"externalcontact/list?userid={quote(staff, safe='')}", None, method="GET")
    return [str(c) for c in data.get("external_userid") or []]


async def unassigned_of(api: WeComAPI, staff: str) -> list[str]:
    """A departed staff member's customers waiting for a new owner (``get_unassigned_list``,
    paged with ``cursor``)."""
    out: list[str] = []
    cursor = ""
    while True:
        data = await api.call("externalcontact/get_unassigned_list", {"cursor": cursor, "page_size": 1000})
        out += [str(i["external_userid"]) for i in data.get("info") or [] if i.get("handover_userid") == staff]
        cursor = data.get("next_cursor") or ""
        if not cursor or data.get("is_last"):
            return list(dict.fromkeys(out))


async def transfer_customers(api: WeComAPI, *, resigned: bool, from_staff: str, to_staff: str,
                             customers: list[str]) -> dict[str, int]:
    """Ask WeCom to move ``customers`` (at most ``BATCH``); each one's errcode (0: accepted)."""
    body: dict[str, Any] = {"handover_userid": from_staff, "takeover_userid": to_staff, "external_userid": customers}
    endpoint = "externalcontact/resigned/transfer_customer" if resigned else "externalcontact/transfer_customer"
    data = await api.call(endpoint, body)
    return {str(c["external_userid"]): int(c.get("errcode") or 0) for c in data.get("customer") or []}


async def transfer_results(api: WeComAPI, *, resigned: bool, from_staff: str, to_staff: str) -> dict[str, int]:
    """Every customer of the (from, to) handover with its status (``TAKEOVER``), over all pages."""
    endpoint = "externalcontact/resigned/transfer_result" if resigned else "externalcontact/transfer_result"
    out: dict[str, int] = {}
    cursor = ""
    while True:
        data = await api.call(endpoint, {"handover_userid": from_staff, "takeover_userid": to_staff,
                                         "cursor": cursor})
        out.update({str(c["external_userid"]): int(c.get("status") or 0) for c in data.get("customer") or []})
        cursor = data.get("next_cursor") or ""
        if not cursor:
            return out


async def transfer_groups(api: WeComAPI, *, resigned: bool, chat_ids: list[str], new_owner: str) -> dict[str, int]:
    """Give groups (at most ``BATCH``) a new owner; the ones that failed, with WeCom's errcode.
    A departed owner's groups go through ``groupchat/transfer`` (离职), a serving one's through
    ``groupchat/onjob_transfer`` (在职); WeCom answers 90500 "the owner of this chat is not
    resigned" for the wrong one (ArtisanCloud/PowerWeChat:src/work/externalContact/response/
    responseGroupChatTransfer.go)."""
    endpoint = "externalcontact/groupchat/transfer" if resigned else "externalcontact/groupchat/onjob_transfer"
    data = await api.call(endpoint, {"chat_id_list": chat_ids, "new_owner": new_owner})
    return {str(f["chat_id"]): int(f.get("errcode") or 0) for f in data.get("failed_chat_list") or []}


def reason(errcode: int) -> str:
    """A WeCom errcode as a stored reason: the code, or a word for ours (no answer, busy)."""
    return {NETWORK: "network", BUSY: "busy"}.get(errcode, str(errcode))
