"""The member center's votes page (投票: vote once, change it until the poll closes, results as
the chat counts them) and leaderboard page (排行: this week's and month's, overall and of my
groups, my place), through the same services as the chat's 「投票」 and 「排行」."""
from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.models import PollVote

OPEN = "/vote open 下期奖品 保温杯:300:5 帆布袋:200:10 贴纸:50:100"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}, leaderboard={"top_n": 5}).model_copy(update={
        "tasks": SiyuConfig.model_validate({"tasks": [{"name": "转发", "points": 30, "per_day": 3}]}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        yield client


def notice(page: str) -> str:
    found = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def votes_of(page: str) -> dict[str, int]:
    """Option name: votes, as the open poll's card shows them."""
    card = page.split('id="poll"', 1)[1].split("</section>", 1)[0]
    return {name: int(n) for name, n in re.findall(r"\d+\. (\S+?)（\d+ 积分）</span>\s*<b>(\d+) 票</b>", card)}


async def opened(bot: SandboxClient, extra: str = "") -> int:
    answer = (await bot.say("op1", OPEN + extra))[0]["text"]
    found = re.search(r"投票 #(\d+)", answer)
    assert found, answer
    return int(found.group(1))


async def test_a_member_votes_changes_the_vote_and_sees_the_counts(bot: SandboxClient) -> None:
    assert "现在没有进行中的投票" in await bot.open_member_center("u1", "/m/votes")
    poll = await opened(bot)
    await bot.say("u2", "投票 2", chat="g1")  # a vote in chat counts on the page too
    page = await bot.member_page("/m/votes")
    assert "下期奖品" in page and votes_of(page) == {"保温杯": 0, "帆布袋": 1, "贴纸": 0}
    page = await bot.member_post(f"/m/votes/{poll}/vote", {"option": "1"}, page="/m/")
    assert notice(page) == "已投给「保温杯」，谢谢参与！"
    assert votes_of(page) == {"保温杯": 1, "帆布袋": 1, "贴纸": 0} and "我投的" in page
    page = await bot.member_post(f"/m/votes/{poll}/vote", {"option": "2"}, page="/m/")
    assert notice(page) == "已改投「帆布袋」（原来投的是「保温杯」）。"
    assert votes_of(page) == {"保温杯": 0, "帆布袋": 2, "贴纸": 0}
    async with bot.db.read() as s:
        assert len((await s.execute(select(PollVote))).scalars().all()) == 2  # one vote a member
    reply = (await bot.say("u1", "投票", chat="g1"))[0]["text"]
    assert "帆布袋（200 积分）— 2 票" in reply  # the chat counts what the page did


async def test_a_closed_poll_refuses_votes_and_shows_its_results(bot: SandboxClient) -> None:
    await bot.open_member_center("u1", "/m/votes")
    poll = await opened(bot)
    await bot.member_post(f"/m/votes/{poll}/vote", {"option": "3"}, page="/m/")
    await bot.say("op1", "/vote close")
    page = await bot.member_page("/m/votes")
    assert "现在没有进行中的投票" in page and "往期结果" in page
    results = page.split("往期结果", 1)[1]
    assert "贴纸 🏆 已上架（我投的）" in results and "<b>1 票</b>" in results
    page = await bot.member_post(f"/m/votes/{poll}/vote", {"option": "1"}, page="/m/")  # a stale form
    assert notice(page) == "这个投票已经结束啦。"
    async with bot.db.read() as s:
        [vote] = (await s.execute(select(PollVote))).scalars().all()
        assert vote.option == 3


async def test_a_poll_past_its_time_refuses_votes_before_the_job_closes_it(bot: SandboxClient,
                                                                           clock: FakeClock) -> None:
    await bot.open_member_center("u1", "/m/votes")
    poll = await opened(bot, " hours=1")
    clock.advance(hours=2)
    page = await bot.member_page("/m/votes")
    assert "投票时间已到" in page and "投这个" not in page
    page = await bot.member_post(f"/m/votes/{poll}/vote", {"option": "1"}, page="/m/")
    assert notice(page) == "这个投票已经结束啦。"
    assert "已经结束" in (await bot.say("u2", "投票 1", chat="g1"))[0]["text"]  # and in chat


async def test_a_vote_for_what_does_not_exist_is_answered(bot: SandboxClient) -> None:
    await bot.open_member_center("u1", "/m/votes")
    poll = await opened(bot)
    page = await bot.member_post(f"/m/votes/{poll}/vote", {"option": "9"}, page="/m/")
    assert notice(page) == "没有编号 9 的选项，请回复 1 到 3 之间的编号。"
    csrf = re.search(r'name="csrf" value="([^"]+)"', await bot.member_page("/m/votes"))
    assert csrf is not None
    for path, option in ((f"/m/votes/{poll}/vote", "abc"), (f"/m/votes/{poll}/vote", "0"), ("/m/votes/x/vote", "1"),
                         (f"/m/votes/{poll + 50}/vote", "1")):
        resp = await bot.http.post(path, data={"csrf": csrf.group(1), "option": option})
        assert resp.status in (400, 404), (path, option)
    resp = await bot.http.post(f"/m/votes/{poll}/vote", data={"csrf": "forged", "option": "1"})
    assert resp.status == 403
    async with bot.db.read() as s:
        assert (await s.execute(select(PollVote))).scalars().all() == []


async def earn(bot: SandboxClient) -> None:
    """g1: 小王 70 (签到 + 2 打卡), 小李 10; g2: 小张 40; 小赵 is in no group and earns nothing."""
    for who, name, chat, tasks in (("a", "小王", "g1", 2), ("b", "小李", "g1", 0), ("c", "小张", "g2", 1)):
        await bot.say(who, "签到", chat=chat, name=name)
        for _ in range(tasks):
            await bot.say(who, "打卡 转发", chat=chat)


def board(page: str, title: str) -> str:
    return page.split(f"<h2>{title}</h2>", 1)[1].split("</section>", 1)[0]


def places(section: str) -> list[tuple[str, str]]:
    return re.findall(r"<span>\d+\. (.+?)</span>\s*<b>([\d,]+) 分</b>", section)


async def test_the_leaderboard_shows_overall_and_my_groups_with_my_place(bot: SandboxClient) -> None:
    await earn(bot)
    page = await bot.open_member_center("b", "/m/ranks")
    assert 'class="here" aria-current="page">排行' in page
    overall = board(page, "本周总榜")
    assert places(overall) == [("小王", "70"), ("小张", "40"), ("小李（我）", "10")]
    assert "我排第 3 名，本周 10 分" in overall
    mine = board(page, "我的群 · 本周榜")  # g1 only: 小张 is in another group
    assert places(mine) == [("小王", "70"), ("小李（我）", "10")] and "我排第 2 名" in mine
    assert page.count('class="card board"') == 2
    month = await bot.member_page("/m/ranks?period=month")
    assert "我排第 3 名，本月 10 分" in board(month, "本月总榜")
    page = await bot.open_member_center("c", "/m/ranks")
    assert "我排第 1 名，本周 40 分" in board(page, "我的群 · 本周榜")
    page = await bot.open_member_center("d", "/m/ranks")
    assert "我本周还没有获得积分" in board(page, "本周总榜") and page.count('class="card board"') == 1


async def test_the_leaderboard_refuses_an_unknown_period(bot: SandboxClient) -> None:
    await bot.open_member_center("u1")
    resp = await bot.http.get("/m/ranks?period=year")
    assert resp.status == 400 and "本周" in await resp.text()
    page = await bot.member_page("/m/ranks")
    assert "本周还没有人获得积分" in page
