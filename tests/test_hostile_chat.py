"""Hostile text in chat: numbers that only look like numbers, ids past what the database holds,
empty tags and apostrophes. Each gets the question again or the command's usage, never the
apology for a crash."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import tags
from storage.models import Member

APOLOGY = "抱歉，处理你的消息时出了点问题"
ASKED_AGAIN = "没太明白你的回答"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:op1"]}), clock=clock) as client:
        await client.say("u1", "签到", chat="g1", name="小王")
        yield client


async def answer(bot: SandboxClient, who: str, text: str) -> str:
    return "\n".join(r["text"] for r in await bot.say(who, text) if r.get("to") == who)


async def test_a_superscript_digit_to_a_numbered_question_is_asked_again(bot: SandboxClient) -> None:
    await bot.say("k1", "申请KOC", name="达人")
    assert ASKED_AGAIN in await answer(bot, "k1", "²")  # "²".isdigit(), but int("²") fails
    assert ASKED_AGAIN in await answer(bot, "k1", "١")  # an Arabic-Indic 1: not a digit here
    assert ASKED_AGAIN not in await answer(bot, "k1", "１")  # full-width, as Chinese input methods type it
    for text in ("空气炸锅", "1", "1 2"):  # product, activities, platforms
        await bot.say("k1", text)
    assert ASKED_AGAIN in await answer(bot, "k1", "²")  # followers: a number question
    assert ASKED_AGAIN in await answer(bot, "k1", "9" * 3000)
    assert ASKED_AGAIN not in await answer(bot, "k1", "5000")


@pytest.mark.parametrize("command, expected", [
    ("/points grant u1 ² 补发", "数量要是 1 到 1000000 之间的整数"),
    ("/points grant u1 １２ 补发", "数量要是 1 到 1000000 之间的整数"),  # operators' numbers are ASCII digits
    ("/points grant u1 " + "9" * 400 + " 补发", "数量要是"),
    ("/member #99999999999999999999", "没有找到用户「#99999999999999999999」"),
    ("/member #²", "没有找到用户「#²」"),
    ("/audit ²", "条数要是 1 到 50 之间的整数"),
    ("/redemption approve ²", "需要一个动作和兑换单号"),
    ("/redemption approve 99999999999999999999", "需要一个动作和兑换单号"),
    ("/reward stock 99999999999999999999 +5", "编号要是 1 到 2147483647 之间的整数"),
    ("/reward add 帆布袋 10 5 limit=²", "limit 要是 0 到 1000000 之间的整数"),
    ("/task add 转发 10 day=²", "day 要是 0 到 1000000 之间的整数"),
    ("/broadcast status ²", "没有编号为 ² 的群发"),
    ("/broadcast cancel 99999999999999999999", "/broadcast"),
    ("/vote open 下期奖品 杯子:300:20 袋子:200:50 winners=²", "winners 要在 1 到 2 之间"),
    ("/vote open 下期奖品 杯子:300:20 袋子:200:50 hours=" + "9" * 3000, "hours 要在 1 到 720 之间"),
    ("/vote close ²", "/vote open"),
])
async def test_numbers_that_only_look_like_numbers_get_the_usage(bot: SandboxClient, command: str,
                                                                  expected: str) -> None:
    reply = await answer(bot, "op1", command)
    assert APOLOGY not in reply and expected in reply, reply


async def test_a_task_number_that_is_not_one_is_an_unknown_task(bot: SandboxClient) -> None:
    reply = await answer(bot, "u1", "打卡 ²")
    assert APOLOGY not in reply and "²" in reply


async def member_tags(bot: SandboxClient, who: str) -> list[str]:
    async with bot.db.read() as s:
        member = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
        return await tags.of_member(s, member)


async def test_empty_and_blank_tags_are_refused_with_the_usage(bot: SandboxClient) -> None:
    for command in ('/tag add u1 ""', '/tag add u1 " "', "/tag add u1 VIP ''", "/tag add u1 “　”"):
        reply = await answer(bot, "op1", command)
        assert "标签要有 1 到 64 个字，不能是空白" in reply and "/tag add <用户>" in reply, (command, reply)
    assert await member_tags(bot, "u1") == []


async def test_an_apostrophe_inside_a_word_is_a_letter_and_quotes_still_group_words(bot: SandboxClient) -> None:
    assert "已给 小王 发放 5 积分" in await answer(bot, "op1", "/points grant u1 5 it's fine")
    assert "你获得了 5 积分（it's fine）" in (await bot.outbox(to="u1"))[-1]["text"]
    await bot.say("op1", "/tag add u1 'a b' “中文 引号” rock'n'roll players' \"x y\"")
    assert sorted(await member_tags(bot, "u1")) == sorted(["a b", "中文 引号", "rock'n'roll", "players'", "x y"])
    assert "引号不成对" in await answer(bot, "op1", '/tag add u1 "open')
    assert "引号不成对" in await answer(bot, "op1", "/tag add u1 'open")
