"""Link and mini-program cards on broadcasts and playbooks (issue 18 §5): WeCom customer groups
get the card as an attachment of their owner's task, filled for the group; a channel without
cards (the sandbox) gets the text with the card's title and URL; a bad card is refused in the
operator's words, in chat, in the API and in config."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import wecom_section
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.config import Config
from bot.config.loading import ConfigError
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from handlers.broadcasts import playbooks as sop
from storage.models import Broadcast, Group, OutboxMessage

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai: the digest's time
MEMBER_CENTER = "https://vip.example.com/center"
PLAYBOOK = {"name": "新品", "text": "{group}的朋友们，新品到了", "cron": "0 9 * * *",
            "link": {"title": "{group}专属：新品上市", "url": "{member_center}/new?group={group}",
                     "desc": "{weekday}限时优惠", "picurl": "https://cdn.example.com/cover.png"}}


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         operators={"admins": ["sandbox:op1"]}, scheduler={"enabled": False},
                         broadcasts={"member_center_url": MEMBER_CENTER}, sop=[PLAYBOOK])
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            for chat, owner in (("wrA", "zhangsan"), ("wrB", "zhangsan")):
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner=owner,
                            created_at=clock.now(), last_active_at=clock.now()))
        await client.event("member_joined", "m1", chat="g1")  # a sandbox group
        yield client


async def op(bot: SandboxClient, text: str) -> str:
    return "\n".join(r["text"] for r in await bot.say("op1", text) if r.get("to") == "op1")


async def test_a_playbooks_link_card_reaches_owner_tasks_filled_and_the_sandbox_as_text_and_url(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)
    d = bot.dispatcher
    assert await sop.plan_slot(d.db, d.config, d.texts, d.config.sop[0], MONDAY_9, now=clock.now()) is not None
    assert await bot.app[JOBS].run("owner_tasks") == 2  # the two groups' cards differ ({group})
    await bot.deliver()
    tasks = {c.body["chat_id_list"][0]: c.body for c in fake.calls("externalcontact/add_msg_template")}
    assert tasks["wrA"]["text"] == {"content": "客户群A的朋友们，新品到了"}
    assert tasks["wrA"]["attachments"] == [{"msgtype": "link", "link": {
        "title": "客户群A专属：新品上市", "desc": "周一限时优惠", "picurl": "https://cdn.example.com/cover.png",
        # {member_center} as configured; a group's name in a URL is percent-encoded
        "url": f"{MEMBER_CENTER}/new?group=%E5%AE%A2%E6%88%B7%E7%BE%A4A"}}]
    assert tasks["wrB"]["attachments"][0]["link"]["title"] == "客户群B专属：新品上市"
    assert sorted(len(a) for a in fake.task_attachments.values()) == [1, 1]  # WeCom got them
    async with bot.db.read() as s:
        sandbox = (await s.execute(select(OutboxMessage.text).where(
            OutboxMessage.chat == "g1", OutboxMessage.text.startswith("本群的朋友们")))).scalars().all()
    assert sandbox == [f"本群的朋友们，新品到了\n\n本群专属：新品上市：{MEMBER_CENTER}/new?group=%E6%9C%AC%E7%BE%A4"]


async def test_an_operators_broadcast_with_a_link_card_previews_it_and_the_sandbox_gets_text_and_url(
    bot: SandboxClient,
) -> None:
    assert "链接卡片" in await op(bot, "/broadcast help")
    preview = await op(bot, "/broadcast g1 周末活动开始啦\n标题：{group}的周末福利\n链接：https://shop.example.com/w?g={group}"
                            "\n描述：满100减20")
    card = "【链接卡片】本群的周末福利\n满100减20\nhttps://shop.example.com/w?g=%E6%9C%AC%E7%BE%A4"
    assert f"——\n周末活动开始啦\n{card}" in preview
    assert "群发 #1 已开始" in await op(bot, "确认")
    await bot.deliver()
    async with bot.db.read() as s:
        texts = (await s.execute(select(OutboxMessage.text).where(
            OutboxMessage.chat == "g1", OutboxMessage.text.startswith("周末活动")))).scalars().all()
    assert texts == ["周末活动开始啦\n\n本群的周末福利：https://shop.example.com/w?g=%E6%9C%AC%E7%BE%A4"]


@pytest.mark.parametrize(("card", "said"), [
    ("标题：福利\n链接：http://shop.example.com/", "卡片的链接必须是以 https:// 开头的完整网址"),
    ("标题：福利\n链接：javascript:alert(1)", "卡片的链接必须是以 https:// 开头的完整网址"),
    ("标题：福利\n链接：https://shop.example.com@evil.example/", "卡片的链接不是有效的网址"),
    ("链接：https://shop.example.com/", "卡片缺少标题"),
    ("标题：福利\n链接：{member_center}@evil.example/", "卡片的链接不是有效的网址"),
    ("标题：" + "福" * 43 + "\n链接：https://shop.example.com/", "标题最多 128 字节（企业微信的上限），现在是 129"),
    ("标题：福利\n链接：https://shop.example.com/\n小程序：wx8bd80126147dfAAA", "一次群发只能带一张卡片"),
    ("标题：会员\n小程序：gh_123\n页面：/pages/index\n封面素材：MEDIA", "小程序要写它的 appid"),
    ("标题：会员\n小程序：wx8bd80126147dfAAA\n页面：/pages/index", "卡片缺少封面素材"),
])
async def test_a_bad_card_is_refused_in_chat_with_what_is_wrong(bot: SandboxClient, card: str, said: str) -> None:
    answer = await op(bot, f"/broadcast all 今天的话题\n{card}")
    assert said in answer and "没有创建群发" in answer and "/broadcast help" in answer
    async with bot.db.read() as s:
        assert (await s.execute(select(Broadcast))).first() is None


OPERATOR = "operator-token-0123456789abcdef"


async def api(bot: SandboxClient, body: dict[str, Any], path: str = "/api/broadcasts") -> tuple[int, Any]:
    resp = await bot.http.request("POST", path, json=body, headers={"Authorization": f"Bearer {OPERATOR}"})
    return resp.status, await resp.json()


@pytest.fixture
async def api_bot(make_config: Callable[..., Config], fake: FakeWeCom,
                  clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         api={"tokens": [{"token": OPERATOR, "role": "operator", "name": "crm"}]},
                         scheduler={"enabled": False}, broadcasts={"member_center_url": MEMBER_CENTER})
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            s.add(Group(channel="wecom", external_id="wrA", name="客户群A", owner="zhangsan", created_at=clock.now(),
                        last_active_at=clock.now()))
        yield client


async def test_the_api_sends_a_mini_program_card_to_owner_tasks_and_refuses_a_bad_link_with_422(
    api_bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    bot = api_bot
    mini = {"title": "{group}会员中心", "appid": "wx8bd80126147dfAAA", "page": "/pages/vip/index",
            "pic_media_id": "2-G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0"}
    status, created = await api(bot, {"target": "wrA", "text": "会员日", "miniprogram": mini})
    assert status == 201 and created["card"] == {"type": "miniprogram", **mini}
    clock.set(MONDAY_9)
    assert await bot.app[JOBS].run("owner_tasks") == 1
    await bot.deliver()
    [task] = fake.calls("externalcontact/add_msg_template")
    assert task.body["attachments"] == [{"msgtype": "miniprogram", "miniprogram": {**mini, "title": "客户群A会员中心"}}]

    for link, said in [({"title": "福利", "url": "http://shop.example.com/"}, "必须是以 https:// 开头"),
                       ({"title": "福利", "url": "https://a.example.com", "picurl": "ftp://x"}, "卡片的封面必须是以 https://"),
                       ({"title": "福利", "url": "https://a.example.com/封面"}, "不是有效的网址"),  # ASCII
                       ({"title": "福利", "url": "https://a.example.com/ x"}, "不是有效的网址"),
                       ({"title": "福利", "url": "https://a.example.com", "onclick": "x"}, "onclick")]:
        status, answer = await api(bot, {"target": "all", "text": "x", "link": link})
        assert status == 422 and said in answer["error"]["message"], (link, answer)
    status, answer = await api(bot, {"target": "all", "text": "x", "link": {"title": "a", "url": "https://a.example"},
                                     "miniprogram": mini})
    assert status == 422 and "只能带一张卡片" in answer["error"]["message"]
    assert len(fake.calls("externalcontact/add_msg_template")) == 1
    # The schema counts characters, WeCom bytes: a title over 128 bytes is cut there.
    status, created = await api(bot, {"target": "wrA", "text": "x", "link": {"title": "福" * 43,
                                                                             "url": "https://a.example.com"}})
    assert status == 201 and created["card"]["title"] == "福" * 41 + "…"


async def test_the_consoles_broadcasts_page_shows_the_card(make_config: Callable[..., Config],
                                                          clock: FakeClock) -> None:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         console={"users": [{"name": "ops", "password": "operator-password-1", "role": "operator"}],
                                  "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.event("member_joined", "m1", chat="g1")
        await op(bot, "/broadcast all 新品\n标题：<b>新品</b>上市\n链接：https://shop.example.com/new?a=1&b=2")
        await op(bot, "确认")
        page = await bot.http.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf is not None
        await bot.http.post("/console/login", data={"name": "ops", "password": "operator-password-1",
                                                     "csrf": csrf.group(1), "next": "/console"})
        html = await (await bot.http.get("/console/broadcasts")).text()
    assert "链接卡片" in html and "&lt;b&gt;新品&lt;/b&gt;上市" in html  # escaped, as every operator's text
    assert "https://shop.example.com/new?a=1&amp;b=2" in html


@pytest.mark.parametrize(("sections", "said"), [
    ({"sop": [{**PLAYBOOK, "link": {"title": "福利", "url": "http://shop.example.com/"}}]},
     "sop.0: 卡片的链接必须是以 https:// 开头的完整网址"),
    # {member_center}: neither siyu's member center (switched off) nor [broadcasts] member_center_url
    ({"sop": [PLAYBOOK], "member_center": {"enabled": False}},
     "卡片的链接用了 {member_center}，但还没有配置会员中心网址"),
    ({"broadcasts": {"member_center_url": "http://vip.example.com"}}, "必须是以 https:// 开头"),
    ({"sop": [{**PLAYBOOK, "miniprogram": {"title": "会员"}}], "broadcasts": {"member_center_url": MEMBER_CENTER}},
     "一次群发只能带一张卡片"),
])
def test_a_bad_card_in_config_is_refused_at_start_in_chinese(make_config: Callable[..., Config],
                                                           sections: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_config(**sections)
    assert said in str(refused.value)


async def test_a_digest_carries_the_cards_of_its_items_once_each(bot: SandboxClient, fake: FakeWeCom,
                                                                 clock: FakeClock) -> None:
    for text in ("第一条\n标题：活动\n链接：https://shop.example.com/a", "第二条",
                 "第三条\n标题：活动\n链接：https://shop.example.com/a"):  # the same card as the first
        await op(bot, f"/broadcast wrA {text}")
        await op(bot, "确认")
    clock.set(MONDAY_9)
    assert await bot.app[JOBS].run("owner_tasks") == 1
    await bot.deliver()
    [task] = fake.calls("externalcontact/add_msg_template")
    assert task.body["text"]["content"] == "第一条\n\n第二条\n\n第三条"
    assert task.body["attachments"] == [{"msgtype": "link", "link": {"title": "活动",
                                                                     "url": "https://shop.example.com/a"}}]


async def test_a_one_to_one_playbook_gives_the_member_the_cards_title_and_url(make_config: Callable[..., Config],
                                                                             clock: FakeClock) -> None:
    playbook = {"name": "入群礼", "text": "欢迎！", "after_member_joined_days": 0,
                "link": {"title": "新人礼包", "url": "{member_center}/gift"}}
    config = make_config(scheduler={"enabled": False}, broadcasts={"member_center_url": MEMBER_CENTER},
                         sop=[playbook])
    async with sandbox_app(config, clock=clock) as bot:
        await bot.say("u1", "你好")
        d = bot.dispatcher
        assert await sop.plan_relative(d.db, d.config, d.texts, clock.now()) == 1
        async with bot.db.read() as s:
            sent = (await s.execute(select(OutboxMessage.text).where(
                OutboxMessage.to == "u1", OutboxMessage.text.startswith("欢迎！")))).scalars().all()
    assert sent == [f"欢迎！\n\n新人礼包：{MEMBER_CENTER}/gift"]
