"""The points mall (积分商城) of the member center: what a member sees of each reward and why
they cannot redeem it yet, redeeming with a confirm step (the same redemption as 兑换/确认 in
chat), codes and my redemptions, the points ledger; and what it refuses: another member's
redemption, a form from elsewhere, a double submit, and a page racing chat for the last units."""
from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points
from storage.models import Member, Redemption, Reward

BEIJING = timezone(timedelta(hours=8))
REWARDS = [
    {"name": "保温杯", "cost": 100, "stock": 10},
    {"name": "限量徽章", "cost": 10, "stock": 5, "per_member_limit": 1},
    {"name": "咖啡券", "cost": 20, "stock": 2, "codes": ["CAFE-001", "CAFE-002"]},
    {"name": "降噪耳机", "cost": 50, "stock": 1, "approval": True},
    {"name": "黄金礼盒", "cost": 10, "stock": 3, "min_level": "黄金"},
    {"name": "新年福袋", "cost": 10, "stock": 3, "starts_at": datetime(2099, 1, 1, tzinfo=BEIJING)},
    {"name": "最后三件", "cost": 10, "stock": 3},
]


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate({"rewards": REWARDS}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


def notice(page: str) -> str:
    found = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def text(page: str) -> str:
    """What a person reads: tags gone, entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def section(page: str, reward_id: int) -> str:
    found = re.search(rf'<section class="card reward" id="reward-{reward_id}">(.*?)</section>', page, re.S)
    assert found, f"reward {reward_id} is not in the mall"
    return text(found.group(1))


async def give(bot: SandboxClient, who: str, amount: int) -> int:
    await bot.say(who, "你好")
    async with bot.db.transaction() as s:
        member = (await s.execute(select(Member).where(Member.external_id == who))).scalar_one()
        await points.credit(s, member.id, amount, key=f"test-grant:{who}", reason="活动奖励",
                            now=bot.dispatcher.clock.now(), kind=points.GRANT)
        return member.id


async def reward_of(bot: SandboxClient, name: str) -> Reward:
    async with bot.db.read() as s:
        return (await s.execute(select(Reward).where(Reward.name == name))).scalar_one()


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"the page has no {name} field"
    return found.group(1)


async def redeem_on_page(bot: SandboxClient, reward_id: int) -> str:
    """Open the reward, confirm; the page the confirmation leads to."""
    confirm = await bot.member_page(f"/m/mall/{reward_id}")
    resp = await bot.http.post(f"/m/mall/{reward_id}/redeem",
                               data={"csrf": field(confirm, "csrf"), "nonce": field(confirm, "nonce")})
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_the_mall_shows_each_reward_and_why_it_cannot_be_redeemed_yet(shop: SandboxClient) -> None:
    await give(shop, "u1", 30)
    mall = await shop.open_member_center("u1", "/m/mall")
    cup, badge, gold, later = [await reward_of(shop, n) for n in ("保温杯", "限量徽章", "黄金礼盒", "新年福袋")]
    assert "可用 30 积分" in text(mall)
    assert "100 积分 · 剩 10 件" in section(mall, cup.id) and "积分不足，还差 70 积分" in section(mall, cup.id)
    assert "每人限兑 1 件" in section(mall, badge.id) and "兑换" in section(mall, badge.id)
    assert "需要「黄金」及以上等级（你现在是「青铜」）" in section(mall, gold.id)
    assert "01-01 00:00 开始兑换" in section(mall, later.id)  # the window, in the community's zone
    assert "兑换码即时发放" in section(mall, (await reward_of(shop, "咖啡券")).id)
    assert "需审核" in section(mall, (await reward_of(shop, "降噪耳机")).id)
    assert len(mall.encode()) < 50_000
    # Once redeemed, the limit is the reason.
    await redeem_on_page(shop, badge.id)
    assert "每人限兑 1 件，你已兑换过" in section(await shop.member_page("/m/mall"), badge.id)


async def test_redeeming_on_the_page_is_chat_redemption_with_a_confirm_step(shop: SandboxClient) -> None:
    member = await give(shop, "u1", 150)
    cup = await reward_of(shop, "保温杯")
    await shop.open_member_center("u1")
    confirm = await shop.member_page(f"/m/mall/{cup.id}")
    assert "确认用 100 积分兑换「保温杯」吗？兑换后剩余 50 积分" in text(confirm)
    async with shop.db.read() as s:  # opening the confirm page took nothing
        assert await points.balance(s, member) == 150
    after = await redeem_on_page(shop, cup.id)
    assert "兑换成功" in notice(after) and "剩余积分 50" in notice(after)
    assert "保温杯" in text(after) and "待发放" in text(after)  # my redemptions, in Chinese
    cup = await reward_of(shop, "保温杯")
    assert (cup.stock, cup.reserved) == (9, 1)
    async with shop.db.read() as s:
        assert await points.check(s, member) == (50, 50, 50)
    # Nothing went to a chat: the page showed it; and chat's 兑换 sees the same stock.
    assert not [m for m in await shop.outbox() if m.get("to") == "u1" and "兑换成功" in m["text"]]
    assert "保温杯 — 100 积分（剩 9 件）" in (await shop.say("u1", "兑换"))[0]["text"]


async def test_a_code_reward_shows_its_code_and_a_high_value_one_waits_for_an_operator(shop: SandboxClient) -> None:
    await give(shop, "u1", 100)
    coffee, phones = await reward_of(shop, "咖啡券"), await reward_of(shop, "降噪耳机")
    await shop.open_member_center("u1")
    after = await redeem_on_page(shop, coffee.id)
    assert "CAFE-001" in notice(after) and "兑换码：CAFE-001" in text(after) and "已发放" in text(after)
    after = await redeem_on_page(shop, phones.id)
    assert "审核通过后安排发放" in notice(after) and "待审核" in text(after)
    async with shop.db.read() as s:
        mine = (await s.execute(select(Redemption).where(Redemption.code == "CAFE-001"))).scalar_one()
    detail = await shop.member_page(f"/m/redemptions/{mine.id}")
    assert "CAFE-001" in detail and "已发放" in text(detail)


async def test_a_refused_redemption_says_why_and_takes_nothing(shop: SandboxClient) -> None:
    member = await give(shop, "u1", 30)
    cup = await reward_of(shop, "保温杯")
    await shop.open_member_center("u1")
    confirm = await shop.member_page(f"/m/mall/{cup.id}")
    assert "积分不足，还差 70 积分" in text(confirm) and "确认兑换" not in confirm
    # A form made up anyway (an old page, a script): the redemption itself refuses.
    csrf = field(await shop.member_page("/m/"), "csrf")
    resp = await shop.http.post(f"/m/mall/{cup.id}/redeem", data={"csrf": csrf, "nonce": "a" * 32})
    assert "积分不够" in notice(await resp.text())
    async with shop.db.read() as s:
        assert await points.balance(s, member) == 30
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 0


async def test_a_double_submitted_confirm_form_redeems_once(shop: SandboxClient) -> None:
    member = await give(shop, "u1", 100)
    cup = await reward_of(shop, "最后三件")
    await shop.open_member_center("u1")
    confirm = await shop.member_page(f"/m/mall/{cup.id}")
    form = {"csrf": field(confirm, "csrf"), "nonce": field(confirm, "nonce")}
    pages = await asyncio.gather(*[shop.http.post(f"/m/mall/{cup.id}/redeem", data=form) for _ in range(3)])
    assert all(p.status == 200 for p in pages)
    again = await shop.http.post(f"/m/mall/{cup.id}/redeem", data=form)  # a reload of the POST later
    assert "已经提交过了，不会重复扣积分" in notice(await again.text())
    async with shop.db.read() as s:
        assert await points.balance(s, member) == 90
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 1
    assert (await reward_of(shop, "最后三件")).stock == 2


async def test_another_members_redemption_is_not_found_and_a_form_from_elsewhere_is_refused(
        shop: SandboxClient) -> None:
    await give(shop, "u1", 100)
    await give(shop, "u2", 100)
    coffee = await reward_of(shop, "咖啡券")
    await shop.open_member_center("u1")
    await redeem_on_page(shop, coffee.id)
    async with shop.db.read() as s:
        theirs = (await s.execute(select(Redemption.id))).scalar_one()
    await shop.open_member_center("u2")
    resp = await shop.http.get(f"/m/redemptions/{theirs}")
    assert resp.status == 404 and "CAFE" not in await resp.text()
    assert "CAFE" not in await shop.member_page("/m/redemptions")
    confirm = await shop.member_page(f"/m/mall/{coffee.id}")
    resp = await shop.http.post(f"/m/mall/{coffee.id}/redeem", data={"nonce": field(confirm, "nonce")})
    assert resp.status == 403
    resp = await shop.http.post(f"/m/mall/{coffee.id}/redeem", data={"csrf": "forged", "nonce": "b" * 32})
    assert resp.status == 403
    for bad in ("0", "99999", "abc"):
        assert (await shop.http.get(f"/m/mall/{bad}")).status == 404
    async with shop.db.read() as s:
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 1


async def browser_of(bot: SandboxClient, who: str) -> tuple[aiohttp.ClientSession, str]:
    """A phone of its own for ``who``, signed in to the member center; its CSRF token."""
    phone = aiohttp.ClientSession(base_url=str(bot.http.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with phone.get("/m/", params={"as": who}) as resp:
        assert resp.status == 200
        return phone, field(await resp.text(), "csrf")


async def test_page_and_chat_racing_for_the_last_units_serve_the_stock_and_charge_each_winner_once(
        shop: SandboxClient) -> None:
    last = await reward_of(shop, "最后三件")
    ids = {who: await give(shop, who, 100) for who in [f"p{i}" for i in range(5)] + [f"c{i}" for i in range(5)]}
    phones = {who: await browser_of(shop, who) for who in ids if who.startswith("p")}
    for who in ids:
        if who.startswith("c"):
            assert "回复「确认」" in (await shop.say(who, f"兑换 {last.id}"))[0]["text"]

    async def page(who: str) -> int:
        phone, csrf = phones[who]
        # Each member taps twice: the same form's nonce both times.
        form = {"csrf": csrf, "nonce": f"{ids[who]:032x}"}
        statuses = await asyncio.gather(*[phone.post(f"/m/mall/{last.id}/redeem", data=form) for _ in range(2)])
        return max(r.status for r in statuses)

    try:
        results = await asyncio.gather(*[page(w) for w in phones], *[shop.say(w, "确认") for w in ids if w[0] == "c"])
    finally:
        for phone, _ in phones.values():
            await phone.close()
    assert all(r == 200 for r in results if isinstance(r, int))
    last = await reward_of(shop, "最后三件")
    assert (last.stock, last.reserved) == (0, 3)
    async with shop.db.read() as s:
        winners = (await s.execute(select(Redemption.member_id).where(Redemption.reward_id == last.id))).scalars().all()
        assert len(winners) == 3 and len(set(winners)) == 3
        for who, member in ids.items():
            assert await points.balance(s, member) == (90 if member in winners else 100), who
            assert len(set(await points.check(s, member))) == 1


async def test_the_points_ledger_shows_entries_pending_and_what_expires_soon(shop: SandboxClient) -> None:
    member = await give(shop, "u1", 100)
    await shop.say("u1", "签到", chat="g1")
    now = shop.dispatcher.clock.now()
    async with shop.db.transaction() as s:
        await points.credit(s, member, 30, key="t:expiring", reason="打卡奖励", now=now,
                            expires_at=now + timedelta(days=10))
        await points.credit(s, member, 40, key="t:pending", reason="购物返积分", now=now,
                            available_at=now + timedelta(days=7))
    home = await shop.open_member_center("u1")
    assert 'href="/m/points"' in home
    ledger = text(await shop.member_page("/m/points"))
    assert "活动奖励" in ledger and "运营发放" in ledger and "+100" in ledger
    assert "签到" in ledger and "获得" in ledger
    assert "40 待生效" in ledger
    expiry = (now + timedelta(days=10)).astimezone(shop.dispatcher.config.zone).strftime("%Y-%m-%d")
    assert f"有 30 积分将过期，最早在 {expiry}" in ledger
    assert "earn" not in ledger and "grant" not in ledger  # no English kind reaches a member
