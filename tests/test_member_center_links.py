"""Links into the member center (issue 19): {member_center:<page>} in a playbook or broadcast
reaches each group as a link carrying its campaign (on WeCom customer groups as a link card);
opening it counts the member's visit once a day; the console shows visits, members, sign-ins
and redemptions by surface, and the figures per playbook and group; a forged campaign counts
nothing and breaks nothing."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import wecom_section
from sqlalchemy import func, select

from bot.appkeys import JOBS
from bot.config import Config
from bot.config.loading import ConfigError
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from handlers.broadcasts import playbooks as sop
from storage.models import Campaign, Group, OutboxMessage, Redemption, SignIn, Visit

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
PUBLIC = "https://club.example.com"
PLAYBOOK = {"name": "签到提醒", "text": "{group}的朋友们，今天签到了吗？{member_center:checkin}", "cron": "0 9 * * *"}
CARD_PLAYBOOK = {"name": "逛商城", "text": "新品上架", "cron": "0 9 * * *",
                 "link": {"title": "{group}的积分商城", "url": "{member_center:mall}"}}
USERS = [{"name": "ops", "password": "operator-password-1", "role": "operator"}]
LINK = re.compile(r"https?://[^\s]+/m/[^\s]*")


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    clock.set(MONDAY_9)
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         operators={"admins": ["sandbox:op1"]}, scheduler={"enabled": False},
                         console={"users": USERS, "secret": "s" * 32}, sop=[PLAYBOOK, CARD_PLAYBOOK],
                         rewards=[{"name": "帆布袋", "cost": 10, "stock": 5}])
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            for chat in ("wrA", "wrB"):
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner="zhangsan",
                            created_at=clock.now(), last_active_at=clock.now()))
        await client.event("member_joined", "m1", chat="g1")  # a sandbox group
        yield client


async def plan(bot: SandboxClient, playbook: int) -> None:
    d = bot.dispatcher
    assert await sop.plan_slot(d.db, d.config, d.texts, d.config.sop[playbook], MONDAY_9,
                               now=bot.dispatcher.clock.now()) is not None


async def link_in_group(bot: SandboxClient) -> str:
    """The member-center link the sandbox group g1 got (its path and query, as a member opens it)."""
    await bot.deliver()
    async with bot.db.read() as s:
        texts = (await s.execute(select(OutboxMessage.text).where(OutboxMessage.chat == "g1"))).scalars().all()
    [url] = [m.group(0) for t in texts for m in [LINK.search(t)] if m]
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def visits(bot: SandboxClient) -> list[tuple[str, int]]:
    async with bot.db.read() as s:
        return [(str(day), opens) for day, opens in (await s.execute(
            select(Visit.day, Visit.opens).order_by(Visit.day, Visit.member_id))).all()]


async def console_overview(bot: SandboxClient) -> str:
    bot.http.session.cookie_jar.clear()
    login = await (await bot.http.get("/console/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf is not None
    resp = await bot.http.post("/console/login", allow_redirects=False, data={
        "name": "ops", "password": "operator-password-1", "csrf": csrf.group(1), "next": "/console"})
    assert resp.status == 302
    resp = await bot.http.get("/console")
    assert resp.status == 200
    return await resp.text()


def kpi(page: str, name: str) -> int:
    found = re.search(rf'id="kpi-mc-{name}"><b>([\d,]+)</b>', page)
    assert found, f"no figure {name} on the overview"
    return int(found.group(1).replace(",", ""))


async def test_a_playbooks_page_link_reaches_the_group_with_its_campaign_and_a_visit_counts_once_a_day(
    bot: SandboxClient, clock: FakeClock,
) -> None:
    await plan(bot, 0)
    path = await link_in_group(bot)
    assert re.fullmatch(r"/m/\?c=[A-Za-z0-9_-]{8}", path), path  # the home page, its sign-in (#checkin)
    async with bot.db.read() as s:
        [campaign] = (await s.execute(select(Campaign).where(Campaign.code == path[-8:]))).scalars().all()
    assert campaign.source == "sop:签到提醒" and campaign.group_id is not None
    assert "u1" not in path and "member" not in path  # no member in a link
    await bot.open_member_center("u1", path)
    await bot.member_page(path)  # opened again the same day: one visit
    assert await visits(bot) == [("2026-11-23", 2)]
    clock.set(MONDAY_9 + timedelta(days=1))
    await bot.member_page(path)
    await bot.open_member_center("u2", path)
    assert await visits(bot) == [("2026-11-23", 2), ("2026-11-24", 1), ("2026-11-24", 1)]
    await bot.open_member_center("u3", "/m/")  # no campaign: no visit
    assert len(await visits(bot)) == 3


async def test_on_wecom_customer_groups_the_page_link_is_a_link_card_per_group(
    make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         scheduler={"enabled": False}, server={"public_url": PUBLIC}, sop=[CARD_PLAYBOOK])
    async with sandbox_app(config, clock=clock) as bot:
        async with bot.db.transaction() as s:
            for chat in ("wrA", "wrB"):
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner="zhangsan",
                            created_at=clock.now(), last_active_at=clock.now()))
        await plan(bot, 0)
        assert await bot.app[JOBS].run("owner_tasks") == 2
        await bot.deliver()
    tasks = {c.body["chat_id_list"][0]: c.body for c in fake.calls("externalcontact/add_msg_template")}
    links = {chat: task["attachments"][0]["link"] for chat, task in tasks.items()}
    assert links["wrA"]["title"] == "客户群A的积分商城"
    assert re.fullmatch(rf"{PUBLIC}/m/mall\?c=[A-Za-z0-9_-]{{8}}", links["wrA"]["url"]), links["wrA"]["url"]
    assert links["wrA"]["url"] != links["wrB"]["url"]  # each group its own campaign


async def test_a_card_url_continuing_after_the_member_center_keeps_the_campaign_at_its_end(
    make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)
    playbook = {**CARD_PLAYBOOK, "link": {"title": "活动", "url": "{member_center}/mall?from={group}#top"}}
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         scheduler={"enabled": False}, server={"public_url": PUBLIC}, sop=[playbook])
    async with sandbox_app(config, clock=clock) as bot:
        async with bot.db.transaction() as s:
            s.add(Group(channel="wecom", external_id="wrA", name="A群", owner="zhangsan", created_at=clock.now(),
                        last_active_at=clock.now()))
        await plan(bot, 0)
        assert await bot.app[JOBS].run("owner_tasks") == 1
        await bot.deliver()
    [task] = fake.calls("externalcontact/add_msg_template")
    url = task.body["attachments"][0]["link"]["url"]
    assert re.fullmatch(rf"{PUBLIC}/m/mall\?from=A%E7%BE%A4&c=[A-Za-z0-9_-]{{8}}#top", url), url


async def test_an_operators_broadcast_carries_its_own_campaign(bot: SandboxClient) -> None:
    replies = await bot.say("op1", "/broadcast g1 来逛逛 {member_center:mall}")
    assert any("/m/mall?c=" in r["text"] for r in replies)  # the preview shows the link
    await bot.say("op1", "确认")
    path = await link_in_group(bot)
    assert path.startswith("/m/mall?c=")
    async with bot.db.read() as s:
        sources = (await s.execute(select(Campaign.source))).scalars().all()
    assert sources == ["broadcast:1"]


@pytest.mark.parametrize("text", ["{member_center:shop}", "{member_center:MALL}x"])
async def test_an_unknown_page_is_refused_where_the_operator_writes_it(bot: SandboxClient, text: str,
                                                                       make_config: Callable[..., Config]) -> None:
    if "shop" in text:
        replies = await bot.say("op1", f"/broadcast g1 看看 {text}")
        assert any("{member_center:shop} 不是会员中心的页面" in r["text"] and "mall" in r["text"] for r in replies)
        with pytest.raises(ConfigError) as refused:
            make_config(sop=[{**PLAYBOOK, "text": f"去 {text}"}])
        assert "不是会员中心的页面" in str(refused.value)
    else:  # not a placeholder at all (upper case): an operator's braces, sent as written
        await bot.say("op1", f"/broadcast g1 看看 {text}")
        await bot.say("op1", "确认")
        await bot.deliver()
        async with bot.db.read() as s:
            assert (await s.execute(select(OutboxMessage.text).where(OutboxMessage.chat == "g1",
                                                                     OutboxMessage.text.startswith("看看")))
                    ).scalar_one() == f"看看 {text}"


@pytest.mark.parametrize("code", ["AAAAAAAA", "<script>", "x" * 300, "../../etc", "%E4%B8%AD", "c=1&c=2"])
async def test_a_forged_or_garbled_campaign_counts_nothing_and_the_page_still_opens(bot: SandboxClient,
                                                                                    code: str) -> None:
    await bot.open_member_center("u1")
    resp = await bot.http.get("/m/", params={"c": code})
    assert resp.status == 200
    assert await visits(bot) == []


async def test_the_campaign_survives_signing_in(bot: SandboxClient) -> None:
    await plan(bot, 0)
    path = await link_in_group(bot)
    bot.http.session.cookie_jar.clear()
    resp = await bot.http.get(path + "&as=u7", allow_redirects=False)  # signs in, then back to the link
    assert resp.status == 302 and resp.headers["Location"] == path
    assert (await bot.http.get(resp.headers["Location"])).status == 200
    assert len(await visits(bot)) == 1


async def test_the_console_shows_visits_members_and_sign_ins_and_redemptions_by_surface(bot: SandboxClient) -> None:
    await plan(bot, 0)
    path = await link_in_group(bot)
    for who in ("u1", "u2"):
        await bot.open_member_center(who, path)
    after = await bot.member_post("/m/checkin")  # u2 on the page
    assert "签到成功" in after
    await bot.say("u3", "签到", chat="g1")  # u3 and u4 in chat
    await bot.say("u4", "签到", chat="g1")
    await bot.say("u3", "兑换 1")
    await bot.say("u3", "确认")
    async with bot.db.read() as s:
        assert dict((await s.execute(select(SignIn.via, func.count()).group_by(SignIn.via))).all()) == {
            "chat": 2, "page": 1}
        assert (await s.execute(select(Redemption.via))).scalars().all() == ["chat"]
    page = await console_overview(bot)
    figures = {name: kpi(page, name) for name in ("visits", "members", "signins-chat", "signins-page",
                                                  "redemptions-chat", "redemptions-page")}
    assert figures == {"visits": 2, "members": 2, "signins-chat": 2, "signins-page": 1, "redemptions-chat": 1,
                       "redemptions-page": 0}
    table = page[page.index('id="mc-campaigns"'):]
    row = re.search(r"<tr><td>SOP「签到提醒」</td><td>(.*?)</td><td>2</td><td>2</td><td>1</td></tr>", table)
    assert row is not None and row.group(1) == "g1", table[:800]


async def test_without_the_member_center_the_placeholder_stays_and_with_an_override_it_is_the_brands_page(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)
    for n, (sections, expected) in enumerate((
        ({"member_center": {"enabled": False}}, "{member_center:checkin}"),
        ({"broadcasts": {"member_center_url": "https://vip.example.com/center"}},
         "https://vip.example.com/center#checkin"),  # the brand's own page: as written, no campaign
    )):
        config: dict[str, Any] = {"scheduler": {"enabled": False}, "sop": [{**PLAYBOOK, "name": f"提醒{n}"}],
                                  **sections}
        async with sandbox_app(make_config(**config), clock=clock) as bot:
            await bot.event("member_joined", "m1", chat="g1")
            await plan(bot, 0)
            await bot.deliver()
            async with bot.db.read() as s:
                text = (await s.execute(select(OutboxMessage.text).where(
                    OutboxMessage.chat == "g1", OutboxMessage.text.contains("签到了吗"))
                    .order_by(OutboxMessage.id.desc()).limit(1))).scalar_one()
        assert text.endswith(expected), text


async def test_a_welcome_may_carry_a_member_center_link_and_an_unknown_page_there_is_refused(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    texts = {"welcome_group": "欢迎 {name} 加入{group}！每天来签到：{member_center:checkin}",
             "welcome_contact": "你好 {name}，会员中心在这里：{member_center}"}
    async with sandbox_app(make_config(texts=texts), clock=clock) as bot:
        await bot.event("member_joined", "u5", chat="g1")
        await bot.event("contact_added", "u6")
        await bot.deliver()
        async with bot.db.read() as s:
            sent = (await s.execute(select(OutboxMessage.chat, OutboxMessage.text).where(
                OutboxMessage.text.contains("/m/")))).all()
            sources = (await s.execute(select(Campaign.source, Campaign.group_id).order_by(Campaign.id))).all()
    assert len(sent) == 2 and all(re.search(r"/m/\?c=[A-Za-z0-9_-]{8}", text) for _, text in sent), sent
    assert any(chat == "g1" and text.endswith("#checkin") for chat, text in sent)
    assert [(source, group is None) for source, group in sources] == [("welcome", False), ("welcome", True)]
    with pytest.raises(ConfigError) as refused:
        make_config(texts={"welcome_group": "欢迎 {name}：{member_center:shop}"})
    assert "{member_center:shop} is not a page" in str(refused.value) and "mall" in str(refused.value)
    with pytest.raises(ConfigError):  # only where the feature fills them
        make_config(texts={"signin_done": "签到成功 {member_center:mall}"})


async def test_the_api_refuses_a_broadcast_text_with_an_unknown_page(make_config: Callable[..., Config],
                                                                     clock: FakeClock) -> None:
    token = "operator-token-0123456789abcdef"
    config = make_config(scheduler={"enabled": False},
                         api={"tokens": [{"token": token, "role": "operator", "name": "crm"}]})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.event("member_joined", "m1", chat="g1")
        headers = {"Authorization": f"Bearer {token}"}
        resp = await bot.http.post("/api/broadcasts", json={"target": "all", "text": "逛逛 {member_center:shop}"},
                                   headers=headers)
        assert resp.status == 422
        body = await resp.json()
        assert "{member_center:shop} 不是会员中心的页面" in str(body), body
        resp = await bot.http.post("/api/broadcasts", json={"target": "all", "text": "逛逛 {member_center:mall}"},
                                   headers=headers)
        assert resp.status == 201, await resp.text()
        await bot.deliver()
        async with bot.db.read() as s:
            text = (await s.execute(select(OutboxMessage.text).where(OutboxMessage.chat == "g1",
                                                                     OutboxMessage.text.startswith("逛逛")))).scalar_one()
        assert re.fullmatch(r"逛逛 http://\S+/m/mall\?c=[A-Za-z0-9_-]{8}", text), text


async def test_a_member_who_sends_the_keyword_gets_the_link_with_the_chats_campaign(bot: SandboxClient) -> None:
    [reply] = await bot.say("u8", "会员中心")
    found = re.search(r"http://\S+(/m/\?c=[A-Za-z0-9_-]{8})", reply["text"])
    assert found, reply
    await bot.open_member_center("u8", found.group(1))
    page = await console_overview(bot)
    assert "聊天里发「会员中心」（sandbox）" in page and kpi(page, "visits") == 1
    assert "会员中心" in "\n".join(r["text"] for r in await bot.say("u8", "帮助"))  # on the menu
