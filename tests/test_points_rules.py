"""The rules around earning: pending periods, the daily cap, expiry, levels told on request."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.levels.config import LEVELS
from storage import points
from storage.models import Member


async def member_id(bot: SandboxClient, who: str) -> int:
    async with bot.db.read() as s:
        return (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()


async def text(bot: SandboxClient, who: str, message: str, chat: str | None = None) -> str:
    return "\n".join(r["text"] for r in await bot.say(who, message, chat=chat))


async def test_pending_points_show_but_cannot_be_spent_until_released(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config().model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "晒单", "points": 200, "pending_days": 7}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        reply = await text(bot, "u1", "打卡 晒单")
        assert reply == "打卡成功：「晒单」+200 积分，7 天后生效（待生效共 200）。当前可用积分 0。"
        assert "另有 200 积分待生效" in await text(bot, "u1", "积分")
        m = await member_id(bot, "u1")
        async with bot.db.transaction() as s:
            try:
                await points.spend(s, m, 1, key="early", reason="兑换", now=clock.now())
                raise AssertionError("pending points were spent")
            except points.NotEnoughPoints:
                pass
        jobs = bot.app[JOBS]
        clock.advance(days=6)
        await jobs.run("points_expiry")
        async with bot.db.read() as s:
            assert (await points.balance(s, m), await points.pending(s, m)) == (0, 200)
        clock.advance(days=1)
        await jobs.run("points_expiry")
        await jobs.run("points_expiry")  # a second sweep releases nothing twice
        async with bot.db.read() as s:
            assert (await points.balance(s, m), await points.pending(s, m)) == (200, 0)
            assert await points.check(s, m) == (200, 200, 200)
        assert (await text(bot, "u1", "积分")).startswith("你现在有 200 积分。")


async def test_the_daily_cap_stops_earning_with_a_clear_answer(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(points={"daily_cap": 100}).model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "转发品牌文章", "points": 95, "per_day": 5}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        assert "+95 积分" in await text(bot, "u1", "打卡 转发品牌文章")
        assert await text(bot, "u1", "签到") == (
            "签到成功，已连续签到 1 天！不过你今天获得的积分已达上限（100 分），这次不再加分。当前积分 95。")
        assert "已达上限（100 分）" in await text(bot, "u1", "打卡 转发品牌文章")
        clock.advance(days=1)  # a new local day
        assert "当前积分 105" in await text(bot, "u1", "签到")
        assert "已连续签到 2 天" in await text(bot, "u1", "签到")  # the capped day still counted for the streak


async def test_earned_points_expire_after_the_configured_days(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    async with sandbox_app(make_config(points={"expire_after_days": 40}), clock=clock) as bot:
        await text(bot, "u1", "签到")
        assert "积分最早将于" not in await text(bot, "u1", "积分")  # 40 days away: no warning yet
        clock.advance(days=15)
        assert "⚠️ 10 积分最早将于 2027-01-01 过期" in await text(bot, "u1", "积分")
        clock.advance(days=26)
        assert await bot.app[JOBS].run("points_expiry") == 1
        summary = await text(bot, "u1", "积分")
        assert summary.startswith("你现在有 0 积分。") and "积分过期 -10" in summary


def test_the_default_levels_rise_as_game_ranks(make_config: Callable[..., Config]) -> None:
    """Each default tier reads as a rise (not 白银 → 白金 → 黄金: 白金 ranks above 黄金)."""
    tiers = make_config()[LEVELS].tiers
    assert [t.name for t in tiers] == ["青铜", "白银", "黄金", "铂金", "钻石"]
    assert [t.min_points for t in tiers] == [0, 500, 2000, 5000, 10000]


async def test_points_and_level_on_request(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config(signin={"daily_points": 300})
    async with sandbox_app(config, clock=clock) as bot:
        assert "还没有积分记录" in await text(bot, "u1", "积分")
        await text(bot, "u1", "签到")
        summary = await text(bot, "u1", "积分")
        assert summary == "你现在有 300 积分。\n最近记录：\n11-22 每日签到 +300"
        assert await text(bot, "u1", "等级") == ("你现在是「青铜」会员，累计获得 300 积分。"
                                               "再获得 200 积分升级为「白银」。")
