"""Confirmations never trap a member (issue 17, item 3): a redemption certain to fail is refused
before 「确认」 is asked."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points
from storage.models import Member, Redemption, Reward

CONFIRM_ASKED = "回复「确认」兑换"


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}, tasks=[{"name": "晒单", "points": 20}])
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate({"rewards": [
        {"name": "贴纸", "cost": 50, "stock": 10},
        {"name": "帆布袋", "cost": 100, "stock": 5},
        {"name": "保温杯", "cost": 300, "stock": 5},
        {"name": "徽章", "cost": 10, "stock": 5, "per_member_limit": 1},
        {"name": "礼盒", "cost": 10, "stock": 5, "min_level": "钻石"},
        {"name": "绝版", "cost": 10, "stock": 0},
        {"name": "5 元券", "cost": 10, "stock": 1, "codes": ["C-1"]},
    ]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def give(bot: SandboxClient, who: str, amount: int) -> int:
    await bot.say(who, "你好")
    async with bot.db.transaction() as s:
        m = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
        await points.credit(s, m, amount, key=f"give:{who}", reason="测试", now=bot.dispatcher.clock.now())
    return m


async def ids(bot: SandboxClient) -> dict[str, int]:
    async with bot.db.read() as s:
        return {r.name: r.id for r in (await s.execute(select(Reward))).scalars()}


async def say(bot: SandboxClient, who: str, text: str) -> list[str]:
    return [r["text"] for r in await bot.say(who, text) if r.get("to") == who]


async def redemptions(bot: SandboxClient) -> list[str]:
    async with bot.db.read() as s:
        rows = (await s.execute(select(Reward.name).join(Redemption, Redemption.reward_id == Reward.id)
                                .order_by(Redemption.id))).scalars()
        return list(rows)


async def test_a_pick_certain_to_fail_is_refused_before_confirm_is_asked(shop: SandboxClient) -> None:
    await give(shop, "u1", 200)
    r = await ids(shop)
    await say(shop, "u1", f"兑换 {r['徽章']}")
    assert "兑换成功" in (await say(shop, "u1", "确认"))[0]
    # Another unit of a limit-1 reward, a level too low, not enough points, no stock, an empty code pool.
    async with shop.db.transaction() as s:  # an operator added stock beyond the code pool
        await s.execute(Reward.__table__.update().where(Reward.id == r["5 元券"]).values(stock=2))
    await give(shop, "u3", 10)
    await say(shop, "u3", f"兑换 {r['5 元券']}")
    await say(shop, "u3", "确认")  # the only code
    expected = {
        "徽章": "「徽章」每人最多兑换 1 件，你已经兑换过啦。",
        "礼盒": "「礼盒」需要「钻石」及以上等级才能兑换",
        "保温杯": "积分不够哦：「保温杯」需要 300 积分，你现在有 190 积分。",
        "绝版": "「绝版」已经兑完了～",
        "5 元券": "「5 元券」已经兑完了～",
    }
    for name, answer in expected.items():
        [said] = await say(shop, "u1", f"兑换 {r[name]}")
        assert answer in said and CONFIRM_ASKED not in said, (name, said)
        # Nothing waits for 确认: it is an ordinary message again (the fallback answers).
        assert "有其他问题可以直接留言" in (await say(shop, "u1", "确认"))[0]
    assert await redemptions(shop) == ["徽章", "5 元券"]
