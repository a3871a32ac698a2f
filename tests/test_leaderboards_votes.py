"""Leaderboards, the winners announcement, and votes on the next rewards."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.leaderboard.winners import announce_winners
from storage import points, rewards
from storage.models import Member, Reward

MONDAY_9_SHANGHAI = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}, leaderboard={"top_n": 2}).model_copy(update={
        "tasks": SiyuConfig.model_validate({"tasks": [{"name": "转发", "points": 100, "per_day": 3}]}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def text(bot: SandboxClient, who: str, message: str, chat: str | None = None) -> str:
    return "\n".join(r["text"] for r in await bot.say(who, message, chat=chat))


async def earn_week(bot: SandboxClient) -> None:
    """g1: 小李 210, 小王 110, 小张 10; g2: 小赵 100 (and an operator's grant that ranks nowhere)."""
    for who, name, chat, tasks in (("a", "小王", "g1", 1), ("b", "小李", "g1", 2), ("c", "小张", "g1", 0),
                                   ("d", "小赵", "g2", 1)):
        await bot.say(who, "签到" if who != "d" else "大家好", chat=chat, name=name)
        for _ in range(tasks):
            await bot.say(who, "打卡 转发", chat=chat)
    async with bot.db.transaction() as s:
        d = (await s.execute(select(Member.id).where(Member.external_id == "d"))).scalar_one()
        await points.credit(s, d, 5000, key="grant:d", reason="补发", now=bot.dispatcher.clock.now(), kind=points.GRANT)


async def test_the_group_board_ranks_its_own_members_by_points_earned(bot: SandboxClient) -> None:
    await earn_week(bot)
    assert await text(bot, "c", "排行", chat="g1") == "本群本周积分榜：\n1. 小李 — 210 分\n2. 小王 — 110 分"
    assert await text(bot, "d", "排行", chat="g2") == "本群本周积分榜：\n1. 小赵 — 100 分"  # the grant does not count
    one_to_one = await text(bot, "c", "排行 月")
    assert one_to_one == "本月积分总榜：\n1. 小李 — 210 分\n2. 小王 — 110 分\n你排第 4 名（10 分）。"


async def test_winners_are_posted_to_each_group_once(bot: SandboxClient, clock: FakeClock) -> None:
    await earn_week(bot)
    jobs = bot.app[JOBS]
    clock.set(MONDAY_9_SHANGHAI)  # the week ended; the announcement is due at 10:00
    assert await jobs.run("winners") == 0
    clock.advance(hours=1)
    d = bot.dispatcher
    # Two sweeps at once (two processes, say): the week's winners are posted once.
    done = await asyncio.gather(*(announce_winners(d.db, d.config, d.texts, clock.now()) for _ in range(3)))
    assert sorted(done) == [0, 0, 2]
    assert await jobs.run("winners") == 0
    posted = [m["text"] for m in await bot.outbox(chat="g1") if m["text"].startswith("🏆")]
    assert posted == ["🏆 上周积分榜（11.16–11.22）\n1. 小李 — 210 分\n2. 小王 — 110 分\n"
                      "恭喜上榜的小伙伴！继续签到、打卡，下期见～"]
    assert [m["text"] for m in await bot.outbox(chat="g2") if m["text"].startswith("🏆")][0].count("分\n") == 1


async def test_a_vote_from_opening_to_the_catalog(bot: SandboxClient) -> None:
    await bot.say("u1", "大家好", chat="g1")
    await bot.say("u2", "大家好", chat="g2")
    assert "只有运营及以上可以使用" in await text(bot, "u1", "/vote open 投票 杯子:300:5 帆布袋:200:10")
    assert "需要 2 到 20 个不同的选项" in await text(bot, "op1", "/vote open 下期奖品 杯子:300:5")
    opened = await text(bot, "op1", '/vote open "下期 奖品" 保温杯:300:5 帆布袋:200:10 贴纸:50:100 winners=2')
    assert opened.startswith("投票 #") and "已发到 2 个群" in opened
    assert "🗳 新投票：下期 奖品\n1. 保温杯（300 积分）" in (await bot.outbox(chat="g2"))[-1]["text"]
    assert await text(bot, "u1", "投票 1", chat="g1") == "已投给「保温杯」，谢谢参与！"
    assert await text(bot, "u1", "投票 3") == "已改投「贴纸」（原来投的是「保温杯」）。"  # one vote, replaced
    assert "没有编号 9 的选项" in await text(bot, "u2", "投票 9")
    await text(bot, "u2", "投票 3")
    await text(bot, "u3", "投票 2")
    assert "3. 贴纸（50 积分）— 2 票" in await text(bot, "u3", "投票")
    report = await text(bot, "op1", "/vote close")
    assert "「贴纸」、「帆布袋」已上架" in report
    results = (await bot.outbox(chat="g1"))[-1]["text"]
    assert "贴纸：2 票\n帆布袋：1 票\n保温杯：0 票" in results
    assert "\n「贴纸」、「帆布袋」将上架积分商城" in results  # no stray space before 将
    assert await text(bot, "u1", "投票 1") == "现在没有进行中的投票。"
    async with bot.db.read() as s:
        catalog = {r.name: r.stock for r in await rewards.catalog(s, now=bot.dispatcher.clock.now())}
    assert catalog == {"贴纸": 100, "帆布袋": 10}


async def test_a_tie_for_the_last_place_is_called_a_tie(bot: SandboxClient) -> None:
    await bot.say("u1", "大家好", chat="g1")
    await text(bot, "op1", "/vote open 下期奖品 保温杯:300:5 帆布袋:200:10")
    await text(bot, "u1", "投票 1")
    await text(bot, "u2", "投票 2")
    await text(bot, "op1", "/vote close")
    results = (await bot.outbox(chat="g1"))[-1]["text"]
    assert "（「保温杯」、「帆布袋」票数相同，按选项顺序选出）" in results and "「保温杯」将上架" in results


async def test_a_poll_closes_at_its_time(bot: SandboxClient, clock: FakeClock) -> None:
    await bot.say("u1", "大家好", chat="g1")
    await text(bot, "op1", "/vote open 下期奖品 保温杯:300:5 帆布袋:200:10 hours=48")
    await text(bot, "u1", "投票 2")
    jobs = bot.app[JOBS]
    clock.advance(hours=47)
    assert await jobs.run("polls") == 0
    clock.advance(hours=2)
    assert await jobs.run("polls") == 1
    assert await jobs.run("polls") == 0
    async with bot.db.read() as s:
        assert [r.name for r in (await s.execute(select(Reward))).scalars()] == ["帆布袋"]
