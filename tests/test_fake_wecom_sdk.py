"""A real SDK pointed at the fake WeCom: wechatpy's ``WeChatClient`` (``wechatpy.enterprise`` in
wechatpy 1.x, ``wechatpy.work`` in 2.x) calls it as it would call WeCom and gets the answers it
expects, so what the fake answers siyu is what a real client parses."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from wechatpy.exceptions import WeChatClientException

from bot.testing.fake_wecom import FakeWeCom

try:
    from wechatpy.enterprise import WeChatClient  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from wechatpy.work import WeChatClient

KF = "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw"


def client_of(fake: FakeWeCom) -> Any:
    """wechatpy's client with its base URL and its (hard-coded) token URL on the fake."""

    class OnTheFake(WeChatClient):  # type: ignore[misc,valid-type]
        API_BASE_URL = fake.base_url

        def fetch_access_token(self) -> Any:
            return self._fetch_access_token(url=fake.base_url + "gettoken",
                                            params={"corpid": self.corp_id, "corpsecret": self.secret})

    return OnTheFake(fake.corp_id, fake.secret, timeout=5, auto_retry=False)


async def test_wechatpy_gets_the_shapes_it_expects(fake: FakeWeCom) -> None:
    client = client_of(fake)
    fake.add_group("wrGroup1", "zhangsan", ["wmA", "zhangsan"], name="新品体验群")
    fake.kf_user_says(KF, "wmUser1", "你好")

    def as_wechatpy_would() -> dict[str, Any]:  # wechatpy is synchronous: it runs in a thread
        first = client.kf.sync_msg("callback-token")  # wechatpy 2.0a26 sends no open_kfid: all accounts
        again = client.kf.sync_msg("callback-token", cursor=first["next_cursor"])
        sent = client.kf_message.send_text("wmUser1", KF, "你好，有什么可以帮你？", msgid="siyu1")
        task = client.external_contact.add_msg_template({
            "chat_type": "group", "sender": "zhangsan", "chat_id_list": ["wrGroup1"], "text": {"content": "话题"}})
        listed = client.post("externalcontact/get_groupmsg_list_v2", data={
            "chat_type": "group", "start_time": int(fake.now()) - 60, "end_time": int(fake.now()) + 60,
            "creator": "zhangsan", "filter_type": 0, "limit": 100})
        chats = client.external_contact_group_chat.list(owner_userid_list=["zhangsan"])
        chat = client.external_contact_group_chat.get("wrGroup1")
        welcome = client.external_contact.send_welcome_msg({"welcome_code": "CODE-1", "text": {"content": "欢迎"}})
        try:
            client.external_contact.send_welcome_msg({"welcome_code": "CODE-1", "text": {"content": "欢迎"}})
            used: int | None = None
        except WeChatClientException as exc:
            used = exc.errcode
        return {"first": first, "again": again, "sent": sent, "task": task, "listed": listed, "chats": chats,
                "chat": chat, "welcome": welcome, "used": used}

    got = await asyncio.to_thread(as_wechatpy_would)
    [message] = got["first"]["msg_list"]
    assert message["external_userid"] == "wmUser1" and message["origin"] == 3 and message["text"]["content"] == "你好"
    cursor = got["first"]["next_cursor"]
    assert isinstance(cursor, str) and not cursor.isdigit()  # an opaque cursor, as WeCom's
    assert got["again"]["msg_list"] == [] and got["again"]["has_more"] == 0
    assert got["sent"]["errcode"] == 0 and got["sent"]["msgid"] == "siyu1"
    assert got["task"]["msgid"] and got["task"]["fail_list"] == []
    [listed] = got["listed"]["group_msg_list"]
    assert listed["msgid"] == got["task"]["msgid"] and listed["creator"] == "zhangsan"
    assert listed["text"]["content"] == "话题"
    assert got["chats"]["group_chat_list"] == [{"chat_id": "wrGroup1", "status": 0}]
    assert got["chat"]["group_chat"]["name"] == "新品体验群"
    assert got["welcome"]["errcode"] == 0 and got["used"] == 41051
    # The token wechatpy fetched was the fake's and was accepted on every call.
    assert fake.calls("gettoken") and all(r.query.get("access_token") for r in fake.requests
                                          if r.endpoint != "gettoken")


@pytest.mark.parametrize("head", ["请选择" * 400])
async def test_wechatpy_menus_over_the_limits_are_refused(fake: FakeWeCom, head: str) -> None:
    """The fake refuses what WeCom refuses: a msgmenu head over 1,024 bytes (40058)."""
    client = client_of(fake)
    fake.kf_user_says(KF, "wmUser1", "你好")

    def send() -> int | None:
        try:
            options = [{"type": "click", "click": {"id": "1", "content": "是"}}]
            client.kf_message.send_msgmenu("wmUser1", KF, head, options, "", msgid="siyu2")
        except WeChatClientException as exc:
            return int(exc.errcode)
        return None

    assert await asyncio.to_thread(send) == 40058
