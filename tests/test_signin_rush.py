"""Rush hour (issue 20): many sign-ins at once are handled together with the same rules and
answers, and a group hears one confirmation naming everyone rather than one line per member."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.appkeys import OUTBOX
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from storage import outbox, outbox_merge, points
from storage.models import Member, OutboxMessage

T0 = datetime(2026, 11, 22, 2, 0, 0, 500_000, tzinfo=UTC)  # half a second into a 3-second window
NO_LIMIT = {"group_rate_per_min": 6000}  # the bucket is real time: these tests count messages, not wait


async def test_a_rush_of_sign_ins_keeps_every_rule(make_config: Callable[..., Config], clock: FakeClock) -> None:
    """Streaks, bonuses, the daily cap and repeats, for 40 members signing in at the same moment."""
    clock.set(T0)
    config = make_config(signin={"daily_points": 10, "streak_bonus": {"2": 5}, "group_digest_s": 0},
                         points={"daily_cap": 12})
    async with sandbox_app(config, clock=clock) as bot:
        for n in range(20):  # half of them signed in yesterday
            await bot.say(f"m{n}", "签到")
        clock.advance(days=1)
        async with bot.as_operator() as ctx:  # m0..m4 already earned 5 points today elsewhere
            ids = {m.external_id: m.id for m in (await ctx.session.execute(select(Member))).scalars()}
            for n in range(5):
                await points.credit(ctx.session, ids[f"m{n}"], 5, key=f"promo:{n}", reason="活动", now=ctx.now)
        replies = await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1") for n in range(40)))
        again = await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1") for n in range(0, 40, 7)))
        texts = [r[0]["text"] for r in replies]
        for n in range(5):  # 10 + 5 bonus on top of 5 passes the cap of 12
            assert texts[n] == ("签到成功，已连续签到 2 天！不过你今天获得的积分已达上限（12 分），"
                                "这次不再加分。当前积分 15。")
        for n in range(5, 20):  # the streak's bonus at 2 days: 15 passes the cap too
            assert texts[n].startswith("签到成功，已连续签到 2 天！不过")
        for n in range(20, 40):
            assert texts[n] == "签到成功！+10 积分，已连续签到 1 天，当前积分 10。"
        for n, r in zip(range(0, 40, 7), again, strict=True):
            assert r[0]["text"].startswith("今天已经签到过啦"), n
        async with bot.db.read() as s:
            for external, member in ids.items():
                total, entries, lots = await points.check(s, member)
                assert total == entries == lots, external


async def test_fifty_sign_ins_in_a_group_get_one_digest(make_config: Callable[..., Config],
                                                        clock: FakeClock) -> None:
    clock.set(T0)
    async with sandbox_app(make_config(outbox=NO_LIMIT), clock=clock) as bot:
        for n in range(50):  # a streak for some: yesterday's sign-in one-to-one
            if n % 2:
                await bot.say(f"m{n}", "签到", name=f"成员{n}")
        clock.advance(days=1)
        await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1", name=f"成员{n}") for n in range(50)))
        assert await bot.outbox(chat="g1") == []  # nothing yet: the window is open
        clock.advance(seconds=3)
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
    assert len(sent) == 1  # fifty names fit in one text (about 1,030 of its 2,048 bytes)
    assert all(text.startswith("今日签到：") and len(text.encode()) <= outbox.MERGED_BYTES for text in sent)
    names = [item.split(" ")[0] for text in sent for item in text.removeprefix("今日签到：").split("、")]
    assert sorted(names) == sorted(f"成员{n}" for n in range(50))
    assert "成员1 连续2天 +10" in sent[0] and "成员0 +10" in sent[0]


async def test_a_digest_whose_merge_fails_goes_out_at_the_next_pass(
        make_config: Callable[..., Config], clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge runs in its own transaction after the claim's: when it fails, the claimed rows
    are handed back at once, not left to their lease (30 s: the digest's 10 s promise broken)."""
    clock.set(T0)
    async with sandbox_app(make_config(outbox=NO_LIMIT), clock=clock) as bot:
        await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1", name=f"成员{n}") for n in range(3)))
        clock.advance(seconds=3)
        merge, calls = outbox_merge.merge, []

        async def fails_once(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("the database went away")
            return await merge(*args, **kwargs)

        monkeypatch.setattr(outbox_merge, "merge", fails_once)
        with pytest.raises(RuntimeError):
            await bot.app[OUTBOX].deliver_once()
        await bot.deliver(timeout=2)  # no lease to wait out
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
    assert len(sent) == 1 and all(f"成员{n}" in sent[0] for n in range(3))


async def test_a_long_digest_is_split_at_the_text_limit(make_config: Callable[..., Config],
                                                        clock: FakeClock) -> None:
    clock.set(T0)
    async with sandbox_app(make_config(outbox=NO_LIMIT), clock=clock) as bot:
        long_names = [f"这是一个很长很长的群昵称成员{n:03d}" for n in range(60)]
        await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1", name=name) for n, name in enumerate(long_names)))
        clock.advance(seconds=3)
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
    assert len(sent) >= 2
    assert all(len(text.encode()) <= outbox.MERGED_BYTES for text in sent)
    named = [item.split(" ")[0] for text in sent for item in text.removeprefix("今日签到：").split("、")]
    assert sorted(named) == sorted(long_names)  # each member once, across the parts


async def test_alone_in_the_window_is_the_ordinary_line_and_milestones_their_own(
        make_config: Callable[..., Config], clock: FakeClock) -> None:
    clock.set(T0)
    config = make_config(signin={"streak_bonus": {"2": 5}}, outbox=NO_LIMIT)
    async with sandbox_app(config, clock=clock) as bot:
        [reply] = await bot.say("u1", "签到", chat="g1", name="小王")
        assert reply["text"] == "签到成功！+10 积分，已连续签到 1 天，当前积分 10。"
        [private] = await bot.say("u2", "签到")  # one-to-one: at once
        assert [m["text"] for m in await bot.outbox(to="u2")] == [private["text"]]
        clock.advance(seconds=3)
        assert [m["text"] for m in await bot.outbox(chat="g1")] == [reply["text"]]
        clock.advance(days=1)
        await bot.say("u3", "签到", chat="g1", name="小李")
        [milestone] = await bot.say("u1", "签到", chat="g1", name="小王")  # a streak bonus: its own line, now
        assert "连续 2 天奖励 +5" in milestone["text"]
        assert milestone["text"] in [m["text"] for m in await bot.outbox(chat="g1")]


async def test_a_group_hears_a_digest_at_most_every_window(make_config: Callable[..., Config],
                                                           clock: FakeClock) -> None:
    """A member a second for a minute: at most 60 / group_digest_s = 20 messages, the default
    ``[outbox] group_rate_per_min``, so the group's rate never holds a confirmation back."""
    clock.set(T0)
    async with sandbox_app(make_config(outbox=NO_LIMIT), clock=clock) as bot:
        for n in range(60):
            await bot.say(f"m{n}", "签到", chat="g1", name=f"成员{n}")
            await bot.deliver()
            clock.advance(seconds=1)
        clock.advance(seconds=3)
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
    assert len(sent) <= 20
    named = [item.split(" ")[0] for text in sent for item in text.removeprefix("今日签到：").split("、")]
    assert sorted(named) == sorted(f"成员{n}" for n in range(60))


async def test_a_group_held_back_hears_everyone_who_waited_in_its_next_line(
        make_config: Callable[..., Config], clock: FakeClock) -> None:
    """A pass claims only ``batch_size`` rows (oldest first, across all groups): the lines of a
    busy group take in every confirmation still waiting for them, rather than two at a time."""
    clock.set(T0)
    async with sandbox_app(make_config(outbox={**NO_LIMIT, "batch_size": 2}), clock=clock) as bot:
        await bot.say("solo", "签到", chat="g2", name="独行")
        await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1", name=f"成员{n}") for n in range(20)))
        clock.advance(seconds=3)
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
        alone = [m["text"] for m in await bot.outbox(chat="g2")]
    assert alone == ["签到成功！+10 积分，已连续签到 1 天，当前积分 10。"]
    assert len(sent) == 1, sent  # not ten lines of two
    assert sorted(item.split(" ")[0] for item in sent[0].removeprefix("今日签到：").split("、")) == sorted(
        f"成员{n}" for n in range(20))


async def test_waiting_confirmations_survive_a_restart(make_config: Callable[..., Config],
                                                       clock: FakeClock) -> None:
    # Inside a window, not at its first instant: a confirmation made exactly at a window's
    # start is due at once (the window it ends), and the first process might send it alone.
    clock.set(T0 + timedelta(seconds=1))
    config = make_config(outbox=NO_LIMIT)
    async with sandbox_app(config, clock=clock) as bot:
        await asyncio.gather(*(bot.say(f"m{n}", "签到", chat="g1", name=f"成员{n}") for n in range(5)))
    clock.advance(seconds=10)
    async with sandbox_app(config, clock=clock) as bot:  # the process that signed them in is gone
        sent = [m["text"] for m in await bot.outbox(chat="g1")]
        async with bot.db.read() as s:
            merged = (await s.execute(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.status == outbox.MERGED))).scalar_one()
    assert len(sent) == 1 and all(f"成员{n}" in sent[0] for n in range(5))
    assert merged == 4


async def test_a_rush_of_task_check_ins_keeps_every_rule(make_config: Callable[..., Config], clock: FakeClock) -> None:
    """30 members 打卡 at the same moment, on a capped task, a pending task and one waiting for
    approval, each with what one-at-a-time gives."""
    from bot.builtin import SiyuConfig

    clock.set(T0)
    tasks = [{"name": "转发", "points": 100, "per_day": 1, "proof": True},
             {"name": "晒单", "points": 50, "per_day": 0, "pending_days": 7},
             {"name": "测评", "points": 30, "per_day": 0, "approval": True}]
    config = make_config().model_copy(update={"tasks": SiyuConfig.model_validate({"tasks": tasks}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.say("m0", "打卡 转发 昨天的链接", chat="g1")  # m0 used today's 转发 already
        texts = [r[0]["text"] for r in await asyncio.gather(*(
            bot.say(f"m{n}", ("打卡 转发 链接", "打卡 晒单 截图", "打卡 测评 文章", "打卡 转发")[n % 4], chat="g1")
            for n in range(30)))]
        for n, text in enumerate(texts):
            expected = {0: "打卡成功：「转发」+100 积分，当前积分 100。", 1: "待生效", 2: "审核通过后发放 30 积分",
                        3: "需要附上证明"}[n % 4]
            if n == 0:
                expected = "每天最多打卡 1 次"
            assert expected in text, (n, text)
        async with bot.db.read() as s:
            for member in (await s.execute(select(Member))).scalars():
                total, entries, lots = await points.check(s, member.id)
                assert total == entries == lots


async def test_task_check_ins_in_a_group_get_their_own_digest(make_config: Callable[..., Config],
                                                              clock: FakeClock) -> None:
    from bot.builtin import SiyuConfig

    clock.set(T0)
    config = make_config(outbox=NO_LIMIT).model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "转发", "points": 100, "per_day": 1}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        await asyncio.gather(*(bot.say(f"m{n}", "打卡 转发", chat="g1", name=f"成员{n}") for n in range(10)),
                             *(bot.say(f"s{n}", "签到", chat="g1", name=f"签到{n}") for n in range(3)))
        clock.advance(seconds=3)
        sent = sorted(m["text"] for m in await bot.outbox(chat="g1"))
    assert len(sent) == 2
    assert sent[0].startswith("今日打卡：") and all(f"成员{n} 转发 +100" in sent[0] for n in range(10))
    assert sent[1].startswith("今日签到：") and all(f"签到{n} +10" in sent[1] for n in range(3))


def test_the_old_section_name_sets_the_digest_too() -> None:
    from bot.builtin import config_from_dict
    from handlers.signin.config import SIGNIN

    assert config_from_dict({"checkin": {"group_digest_s": 5}})[SIGNIN].group_digest_s == 5
    assert config_from_dict({})[SIGNIN].group_digest_s == 3


async def test_the_worker_wakes_when_a_window_ends(make_config: Callable[..., Config]) -> None:
    """In real time, with a poll a minute apart: the digest goes when its window ends, not
    at the next poll (the commit's wake-up found nothing due yet)."""
    config = make_config(outbox={"poll_interval_s": 60}, signin={"group_digest_s": 1})
    async with sandbox_app(config) as bot:
        await bot.say("u1", "签到", chat="g1", name="小王")
        status = None
        for _ in range(40):  # 4 s
            await asyncio.sleep(0.1)
            async with bot.db.read() as s:
                status = (await s.execute(select(OutboxMessage.status)
                                          .where(OutboxMessage.chat == "g1"))).scalar_one()
            if status == outbox.DELIVERED:
                break
        assert status == outbox.DELIVERED
