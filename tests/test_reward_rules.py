"""Reward rules (minimum level, window, approval, code pools) and the stock invariant."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.builtin import SiyuConfig, config_from_dict
from bot.config import Config, ConfigError
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points, rewards
from storage.engine import Database
from storage.models import Member, Reward

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate({"rewards": [
        {"name": "钻石礼盒", "cost": 100, "stock": 3, "min_level": "白银"},
        {"name": "圣诞限定", "cost": 10, "stock": 3, "starts_at": T0 + timedelta(days=1),
         "ends_at": T0 + timedelta(days=2)},
        {"name": "定制外套", "cost": 500, "stock": 2, "approval": True},
        {"name": "10 元券", "cost": 20, "stock": 2, "codes": ["Q-1", "Q-2", "Q-3"]},
    ]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def give(bot: SandboxClient, who: str, amount: int, *, earned: bool = False) -> int:
    await bot.say(who, "你好")
    async with bot.db.transaction() as s:
        m = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
        await points.credit(s, m, amount, key=f"give:{who}:{amount}", reason="测试", now=bot.dispatcher.clock.now(),
                            kind=points.EARN if earned else points.GRANT)
    return m


async def redeem(bot: SandboxClient, who: str, name: str) -> str:
    """The answer to 确认 after picking ``name``."""
    picked = await pick(bot, who, name)
    assert "回复「确认」兑换" in picked, picked
    return (await bot.say(who, "确认"))[0]["text"]


async def pick(bot: SandboxClient, who: str, name: str) -> str:
    """The answer to 「兑换 <编号>」: the confirmation asked, or why it cannot work."""
    async with bot.db.read() as s:
        reward_id = (await s.execute(select(Reward.id).where(Reward.name == name))).scalar_one()
    return (await bot.say(who, f"兑换 {reward_id}"))[0]["text"]


async def operator(bot: SandboxClient, command: str) -> str:
    """The answer to the operator (the member may be told something too)."""
    return next(r["text"] for r in await bot.say("op1", command) if r.get("to") == "op1")


async def unit(bot: SandboxClient, name: str) -> tuple[int, int, int]:
    async with bot.db.read() as s:
        r = (await s.execute(select(Reward).where(Reward.name == name))).scalar_one()
    return r.stock, r.reserved, r.fulfilled


async def test_a_minimum_level_counts_lifetime_points_earned(shop: SandboxClient) -> None:
    await give(shop, "u1", 1000)  # granted, not earned: still 青铜
    assert await pick(shop, "u1", "钻石礼盒") == "「钻石礼盒」需要「白银」及以上等级才能兑换，你现在是「青铜」。"
    await give(shop, "u2", 600, earned=True)
    assert "兑换成功" in await redeem(shop, "u2", "钻石礼盒")
    assert "（白银及以上）" in (await shop.say("u2", "兑换"))[0]["text"]


async def test_a_reward_is_redeemable_only_inside_its_window(shop: SandboxClient, clock: FakeClock) -> None:
    await give(shop, "u1", 100)
    assert "圣诞限定" not in (await shop.say("u1", "兑换"))[0]["text"]
    assert "不在兑换时间内" in await pick(shop, "u1", "圣诞限定")
    clock.advance(days=1)
    assert "圣诞限定" in (await shop.say("u1", "兑换"))[0]["text"]
    assert "兑换成功" in await redeem(shop, "u1", "圣诞限定")
    clock.advance(days=1)
    assert "不在兑换时间内" in await pick(shop, "u1", "圣诞限定")


async def test_a_high_value_reward_waits_for_an_operator(shop: SandboxClient) -> None:
    m = await give(shop, "u1", 1200)
    assert "审核通过后安排发放" in await redeem(shop, "u1", "定制外套")
    assert "审核通过后安排发放" in await redeem(shop, "u1", "定制外套")
    assert await unit(shop, "定制外套") == (0, 2, 0)  # points and units held while waiting
    pending = await operator(shop, "/redemption pending")
    first, second = [int(line.split()[0][1:]) for line in pending.splitlines()]
    assert "定制外套（500 积分，待审核）" in pending
    assert "只有运营及以上可以使用" in (await shop.say("u1", f"/redemption approve {first}"))[0]["text"]
    assert "已审核通过" in await operator(shop, f"/redemption approve {first}")
    assert "已拒绝并退回积分" in await operator(shop, f"/redemption reject {second}")
    assert "不存在或已处理" in await operator(shop, f"/redemption reject {second}")
    told = [m["text"] for m in await shop.outbox(to="u1")]
    assert "你兑换的「定制外套」已审核通过，运营同学会尽快安排发放～" in told
    assert "很抱歉，你兑换的「定制外套」未通过审核，500 积分已退回。" in told
    assert "已标记为已发放" in await operator(shop, f"/redemption fulfil {first}")
    assert await unit(shop, "定制外套") == (1, 0, 1)
    async with shop.db.read() as s:
        assert await points.check(s, m) == (700, 700, 700)


async def test_a_code_pool_reward_hands_out_a_code_at_once(shop: SandboxClient) -> None:
    for who in ("u1", "u2", "u3"):
        await give(shop, who, 50)
    assert await redeem(shop, "u1", "10 元券") == "兑换成功！「10 元券」的兑换码：Q-1\n剩余积分 30。"
    assert "兑换码：Q-2" in await redeem(shop, "u2", "10 元券")
    assert "「10 元券」已经兑完了" in await pick(shop, "u3", "10 元券")  # stock 2: the third code stays
    assert await unit(shop, "10 元券") == (0, 0, 2)
    async with shop.db.read() as s:
        m3 = (await s.execute(select(Member.id).where(Member.external_id == "u3"))).scalar_one()
        assert await points.check(s, m3) == (50, 50, 50)


def test_reward_rules_are_validated() -> None:
    with pytest.raises(ConfigError, match="min_level '传奇' is not a tier"):
        config_from_dict({"rewards": [{"name": "A", "cost": 1, "stock": 1, "min_level": "传奇"}]})
    with pytest.raises(ConfigError, match="ends_at must be later"):
        config_from_dict({"rewards": [{"name": "A", "cost": 1, "stock": 1, "starts_at": T0, "ends_at": T0}]})
    with pytest.raises(ConfigError, match="stock 3 is more than the 2 codes"):
        config_from_dict({"rewards": [{"name": "A", "cost": 1, "stock": 3, "codes": ["x", "y"]}]})


# -- the stock invariant over any sequence ---------------------------------------------------------

actions = st.lists(st.tuples(st.sampled_from(["redeem", "fulfil", "cancel", "approve", "retry"]),
                             st.integers(min_value=0, max_value=3)), min_size=1, max_size=30)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=actions, approval=st.booleans())
async def test_units_and_points_stay_whole_over_any_sequence(db: Database, steps: list[tuple[str, int]],
                                                             approval: bool) -> None:
    n = next(_ids)
    async with db.transaction() as s:
        await rewards.ensure(s, [rewards.RewardSpec(f"奖品{n}", 30, 4, approval=approval)], now=T0)
        reward_id = (await s.execute(select(Reward.id).where(Reward.name == f"奖品{n}"))).scalar_one()
        members = []
        for i in range(4):
            member = Member(channel="sandbox", external_id=f"h{n}-{i}", first_seen_at=T0, last_seen_at=T0)
            s.add(member)
            await s.flush()
            assert member.id is not None
            await points.credit(s, member.id, 70, key=f"h{n}:{i}", reason="x", now=T0)
            members.append(member.id)
    made: list[int] = []
    for k, (action, who) in enumerate(steps):
        async with db.transaction() as s:
            if action in ("redeem", "retry"):
                key = f"h{n}:r{k if action == 'redeem' or not made else k - 1}"
                try:
                    made.append((await rewards.redeem(s, members[who], reward_id, key=key, now=T0)).id)
                except (rewards.Unavailable, points.NotEnoughPoints):
                    pass
            elif made:
                target = made[who % len(made)]
                # ``target`` bound as a default: the one lambda picked is called at once, in this iteration.
                await {"fulfil": lambda target=target: rewards.fulfil(s, target, now=T0),
                       "cancel": lambda target=target: rewards.cancel(s, target, now=T0),
                       "approve": lambda target=target: rewards.approve(s, target)}[action]()
        async with db.read() as s:
            r = await rewards.get(s, reward_id)
            assert r is not None
            assert r.stock >= 0 and r.reserved >= 0 and r.stock + r.reserved + r.fulfilled == 4
            for m in members:
                balance, entries, lots = await points.check(s, m)
                assert balance == entries == lots >= 0


async def test_a_rewards_end_is_shown_in_the_communitys_time(shop: SandboxClient, clock: FakeClock) -> None:
    """Ends 2026-11-24 02:00 UTC: a member in the community (Asia/Shanghai) reads 10:00, not 02:00."""
    clock.set(T0 + timedelta(days=1, hours=1))
    catalog = (await shop.say("u1", "兑换"))[0]["text"]
    assert "圣诞限定" in catalog and "11-24 10:00 截止" in catalog
