"""Redemption: never oversold, never a point lost or doubled, whatever the concurrency."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points, rewards
from storage.models import Member, Redemption, Reward


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config()
    config = config.model_copy(update={"rewards": [
        *SiyuConfig.model_validate({"rewards": [{"name": "保温杯", "cost": 100, "stock": 10},
                                            {"name": "限量徽章", "cost": 10, "stock": 5,
                                             "per_member_limit": 1}]}).rewards,
    ]})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def give(bot: SandboxClient, who: str, amount: int) -> int:
    """A member with ``amount`` points (created through a message, credited in the ledger)."""
    await bot.say(who, "你好")
    async with bot.db.transaction() as s:
        member = (await s.execute(select(Member).where(Member.external_id == who))).scalar_one()
        await points.credit(s, member.id, amount, key=f"test-grant:{who}", reason="测试",
                            now=bot.dispatcher.clock.now())
        return member.id


async def reward(bot: SandboxClient, name: str) -> Reward:
    async with bot.db.read() as s:
        return (await s.execute(select(Reward).where(Reward.name == name))).scalar_one()


async def say(bot: SandboxClient, who: str, text: str) -> str:
    return (await bot.say(who, text))[0]["text"]


async def test_browse_pick_confirm(shop: SandboxClient) -> None:
    m = await give(shop, "u1", 150)
    cup = await reward(shop, "保温杯")
    listing = await say(shop, "u1", "兑换")
    assert "你有 150 积分" in listing and f"{cup.id}. 保温杯 — 100 积分（剩 10 件）" in listing
    assert "需要 100 积分，你现在有 150 积分" in await say(shop, "u1", f"兑换 {cup.id}")
    assert "兑换成功" in await say(shop, "u1", "确认")
    cup = await reward(shop, "保温杯")
    assert (cup.stock, cup.reserved, cup.fulfilled) == (9, 1, 0)
    async with shop.db.read() as s:
        assert await points.check(s, m) == (50, 50, 50)


async def test_refusals_leave_nothing_behind(shop: SandboxClient) -> None:
    m = await give(shop, "u2", 50)
    cup = await reward(shop, "保温杯")
    badge = await reward(shop, "限量徽章")
    assert "没有编号 999 的奖品" in await say(shop, "u2", "兑换 999")
    # Certain to fail: refused when picked, never asked to confirm.
    assert await say(shop, "u2", f"兑换 {cup.id}") == \
        "积分不够哦：「保温杯」需要 100 积分，你现在有 50 积分。继续签到、打卡攒积分吧～"
    assert "需要 10 积分" in await say(shop, "u2", f"兑换 {badge.id}")
    assert "已退出" in await say(shop, "u2", "取消")  # changed their mind
    assert (await reward(shop, "保温杯")).stock == 10
    async with shop.db.read() as s:
        assert await points.check(s, m) == (50, 50, 50)
        assert (await s.execute(select(Redemption))).first() is None


async def test_a_per_member_limit(shop: SandboxClient) -> None:
    await give(shop, "u3", 100)
    badge = await reward(shop, "限量徽章")
    await say(shop, "u3", f"兑换 {badge.id}")
    assert "兑换成功" in await say(shop, "u3", "确认")
    assert "每人最多兑换 1 件" in await say(shop, "u3", f"兑换 {badge.id}")  # said at once, not after 确认


async def test_an_unconfirmed_pick_lapses(shop: SandboxClient, clock: FakeClock) -> None:
    await give(shop, "u4", 100)
    cup = await reward(shop, "保温杯")
    await say(shop, "u4", f"兑换 {cup.id}")
    clock.advance(minutes=11)
    await shop.app[JOBS].fire_deadlines()
    assert "兑换确认已超时" in (await shop.outbox(to="u4"))[-1]["text"]
    assert "品牌助手" in await say(shop, "u4", "确认")  # no longer a confirmation


async def test_two_hundred_members_rush_ten_units(shop: SandboxClient) -> None:
    cup = await reward(shop, "保温杯")
    members = [f"r{i}" for i in range(200)]
    ids = {who: await give(shop, who, 100) for who in members}
    await asyncio.gather(*(say(shop, who, f"兑换 {cup.id}") for who in members))
    answers = await asyncio.gather(*(say(shop, who, "确认") for who in members))
    assert sum("兑换成功" in a for a in answers) == 10
    assert sum("被兑完了" in a for a in answers) == 190
    cup = await reward(shop, "保温杯")
    assert (cup.stock, cup.reserved, cup.fulfilled) == (0, 10, 0)
    async with shop.db.read() as s:
        balances = [await points.check(s, ids[who]) for who in members]
    assert sorted(b[0] for b in balances) == [0] * 10 + [100] * 190  # the other 190 keep their points
    assert all(b[0] == b[1] == b[2] for b in balances)


async def test_fulfil_and_cancel_keep_units_and_points_whole(shop: SandboxClient) -> None:
    m = await give(shop, "u5", 200)
    cup = await reward(shop, "保温杯")
    now = shop.dispatcher.clock.now()
    async with shop.db.transaction() as s:
        first = await rewards.redeem(s, m, cup.id, key="k1", now=now)
        again = await rewards.redeem(s, m, cup.id, key="k1", now=now)  # a retry: the same redemption
        second = await rewards.redeem(s, m, cup.id, key="k2", now=now)
        assert again.id == first.id
        assert await rewards.fulfil(s, first.id, now=now)
        assert await rewards.cancel(s, second.id, now=now)
        assert not await rewards.cancel(s, second.id, now=now) and not await rewards.fulfil(s, second.id, now=now)
        assert await points.check(s, m) == (100, 100, 100)  # 200 - 100 spent; the cancelled 100 refunded
    cup = await reward(shop, "保温杯")
    assert (cup.stock, cup.reserved, cup.fulfilled) == (9, 0, 1)
    assert cup.stock + cup.reserved + cup.fulfilled == 10
