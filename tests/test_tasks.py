"""Task check-ins (打卡): points, caps per period, proof, approval, KOC-only tasks."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.tasks import services as task_handlers
from storage import community, points
from storage.models import AuditEntry, Member, TaskCheckin

TASKS = [
    {"name": "转发品牌文章", "points": 100, "per_day": 1, "per_week": 2, "proof": True},
    {"name": "晒单", "points": 50, "per_day": 0, "approval": True},
    {"name": "写测评", "points": 300, "per_day": 1, "koc_types": ["体验官"]},
]


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}).model_copy(
        update={"tasks": SiyuConfig.model_validate({"tasks": TASKS}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def say(bot: SandboxClient, text: str, who: str = "u1") -> str:
    return (await bot.say(who, text, chat="g1"))[0]["text"]


async def balance(bot: SandboxClient, who: str = "u1") -> int:
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == who))).scalar_one()
        return await points.balance(s, member.id)


async def test_a_task_checkin_with_proof_and_caps(bot: SandboxClient, clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # Monday 10:00 in Shanghai
    assert "需要附上证明" in await say(bot, "打卡 转发品牌文章")
    assert await say(bot, "打卡 转发品牌文章 https://mp.weixin.qq.com/s/abc") == (
        "打卡成功：「转发品牌文章」+100 积分，当前积分 100。")
    assert "每天最多打卡 1 次" in await say(bot, "打卡 转发品牌文章 又一次")
    clock.advance(days=1)
    assert "当前积分 200" in await say(bot, "打卡 转发品牌文章 第二天")
    clock.advance(days=1)  # Wednesday: a new day, but the week's 2 are used
    assert "每周最多打卡 2 次" in await say(bot, "打卡 转发品牌文章 第三天")
    assert await balance(bot) == 200
    clock.advance(days=5)  # the next Monday
    assert "当前积分 300" in await say(bot, "打卡 转发品牌文章 新的一周")


async def test_approval_tasks_wait_for_an_operator(bot: SandboxClient) -> None:
    assert "审核通过后发放 50 积分" in await say(bot, "打卡 晒单 订单截图已发")
    assert await balance(bot) == 0
    async with bot.db.read() as s:
        checkin = (await s.execute(select(TaskCheckin))).scalar_one()
    async with bot.as_operator("op1") as ctx:
        assert await task_handlers.review(ctx, checkin.id, approve=True)
        assert not await task_handlers.review(ctx, checkin.id, approve=True)  # decided already
    assert await balance(bot) == 50
    assert (await bot.outbox(to="u1"))[-1]["text"] == "你的「晒单」打卡审核通过啦：+50 积分，当前积分 50。"


async def test_koc_only_tasks_and_unknown_tasks(bot: SandboxClient) -> None:
    assert "是体验官的专属任务" in await say(bot, "打卡 写测评 很好用")
    async with bot.db.transaction() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
        await community.set_attributes(s, member.id, {"koc_type": "体验官"})
    assert "+300 积分" in await say(bot, "打卡 写测评 很好用")
    assert await bot.say("u1", "打卡 跳舞", chat="g1") == []  # in a group: chat, not a mistake to answer
    unknown = (await bot.say("u1", "打卡 跳舞"))[0]["text"]
    assert "没有「跳舞」这个任务" in unknown and "转发品牌文章" in unknown


async def test_a_retried_checkin_counts_once(bot: SandboxClient) -> None:
    first: list[dict[str, Any]] = await bot.say("u2", "打卡 转发品牌文章 链接", chat="g1", id="m1")
    again = await bot.say("u2", "打卡 转发品牌文章 链接", chat="g1", id="m1")
    assert again == first and await balance(bot, "u2") == 100


async def test_the_task_menu_and_check_in_by_number(bot: SandboxClient) -> None:
    menu = await say(bot, "打卡")
    assert menu.splitlines()[:4] == ["可以打卡的任务：", "1. 转发品牌文章（+100 积分）", "2. 晒单（+50 积分）",
                                     "3. 写测评（+300 积分）"]
    assert "打卡成功：「转发品牌文章」+100 积分" in await say(bot, "打卡 1 https://mp.weixin.qq.com/s/abc")
    assert "没有「4」这个任务" in (await bot.say("u1", "打卡 4"))[0]["text"]
    # Full-width, as a Chinese input method types it (兑换 ２ is taken the same way).
    assert "已收到你的「晒单」打卡" in await say(bot, "打卡 ２ 订单123")


async def test_operators_add_and_disable_tasks(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:op1"]}), clock=clock) as bot:
        async def op(text: str) -> str:
            return (await bot.say("op1", text))[0]["text"]

        assert "已添加打卡任务「晒单」（+50 积分）" in await op("/task add 晒单 50 day=2 approval=yes")
        assert "已经有进行中的任务「晒单」" in await op("/task add 晒单 80")
        refused = await op("/task add 测评 100 koc=大使")
        assert "koc 要是 分享官 / 内容官 / 体验官 / 带货官" in refused and "Input should" not in refused
        assert "已添加打卡任务「测评」（+100 积分）" in await op("/task add 测评 100 proof=yes koc=体验官")
        listed = await op("/task list")
        assert "「晒单」+50 积分，每天 2" in listed and "需运营审核" in listed
        assert "「测评」+100 积分" in listed and "需附证明，仅限 体验官" in listed
        assert "审核通过后发放 50 积分" in await say(bot, "打卡 晒单 订单截图")
        assert "只有运营及以上可以使用" in (await bot.say("u1", "/task disable 晒单"))[0]["text"]
        assert "已停用打卡任务「晒单」" in await op("/task disable 晒单")
        assert "没有「晒单」这个任务" in (await bot.say("u1", "打卡 晒单"))[0]["text"]


async def op(bot: SandboxClient, text: str, who: str = "op1") -> str:
    """The answer to the operator (the member's message, when there is one, is queued too)."""
    [answer] = [r["text"] for r in await bot.say(who, text) if r["to"] == who]
    return str(answer)


async def test_operators_review_pending_checkins_in_chat(bot: SandboxClient) -> None:
    assert await op(bot, "/task pending") == "没有待审核的打卡。"
    await bot.say("u1", "打卡 晒单 订单号123", chat="g1", name="小王")
    await bot.say("u2", "打卡 晒单 订单号456", chat="g1", name="小李")
    async with bot.db.read() as s:
        first, second = (await s.execute(select(TaskCheckin.id).order_by(TaskCheckin.id))).scalars()
    queue = (await op(bot, "/task pending")).splitlines()
    assert queue[0].startswith(f"#{first} 小王（u1）「晒单」+50 积分") and queue[0].endswith("证明：订单号123")
    assert queue[1].startswith(f"#{second} 小李（u2）「晒单」") and len(queue) == 2
    assert await op(bot, f"/task approve #{first}") == (
        f"已通过打卡 #{first}：小王 的「晒单」，发放 50 积分，已通知成员。")
    stale = f"打卡 #{first} 已经处理过了（已发积分），未做改动。"
    assert await op(bot, f"/task approve {first}") == stale
    assert await op(bot, f"/task reject {first} 截图看不清") == stale
    assert await op(bot, f"/task reject {second} 订单号查不到") == (
        f"已拒绝打卡 #{second}：小李 的「晒单」，已通知成员。")
    assert await balance(bot, "u1") == 50 and await balance(bot, "u2") == 0
    assert (await bot.outbox(to="u1"))[-1]["text"] == "你的「晒单」打卡审核通过啦：+50 积分，当前积分 50。"
    assert (await bot.outbox(to="u2"))[-1]["text"] == (
        "你的「晒单」打卡这次没有通过审核：订单号查不到。有疑问可以找运营同学～")
    assert await op(bot, "/task pending") == "没有待审核的打卡。"
    async with bot.db.read() as s:
        entries = (await s.execute(select(AuditEntry.action, AuditEntry.result).where(
            AuditEntry.action.startswith("task.")).order_by(AuditEntry.id))).all()
    assert [tuple(e) for e in entries] == [("task.approve", "ok"), ("task.approve", "refused"),
                                           ("task.reject", "refused"), ("task.reject", "ok")]


async def test_a_rejection_without_a_reason_and_wrong_numbers(bot: SandboxClient) -> None:
    await say(bot, "打卡 晒单 订单号123")
    async with bot.db.read() as s:
        checkin = (await s.execute(select(TaskCheckin.id))).scalar_one()
    assert (await op(bot, "/task approve 999")).startswith("参数不对：没有编号为 999 的打卡")
    assert (await op(bot, "/task approve abc")).startswith("参数不对：打卡编号要是 /task pending 列出的数字")
    assert (await op(bot, "/task reject")).startswith("参数不对：缺少打卡编号")
    assert "只有运营及以上可以使用" in (await bot.say("u1", f"/task approve {checkin}"))[0]["text"]
    assert await op(bot, f"/task reject {checkin}") == f"已拒绝打卡 #{checkin}：u1 的「晒单」，已通知成员。"
    assert (await bot.outbox(to="u1"))[-1]["text"] == "你的「晒单」打卡这次没有通过审核，有疑问可以找运营同学～"
    assert await balance(bot) == 0
    # After a rejection the member may try again.
    assert "审核通过后发放 50 积分" in await say(bot, "打卡 晒单 新的订单号")


async def test_task_help_shows_the_review(bot: SandboxClient) -> None:
    usage = await op(bot, "/help task")
    for line in ("/task pending", "/task approve <打卡编号>", "/task reject <打卡编号> [原因]"):
        assert line in usage


async def test_task_list_without_tasks_says_how_to_add_one(make_config: Callable[..., Config],
                                                           clock: FakeClock) -> None:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:op1"]}), clock=clock) as bot:
        answer = await op(bot, "/task list")
        menu = await say(bot, "打卡")
    assert answer.startswith("还没有打卡任务。") and "[[tasks]]" in answer and "/task add" in answer
    assert menu.startswith("现在还没有可以打卡的任务") and "—" not in menu  # not a menu of nothing
