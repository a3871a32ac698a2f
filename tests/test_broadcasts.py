"""Broadcasts and playbooks: every group exactly once, at the right time, within the limits."""
from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.broadcasts import playbooks as sop
from storage import broadcasts
from storage.models import Broadcast, Delivery, OutboxMessage

# Monday 2026-11-23 09:00 in Shanghai.
MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def config_with(make_config: Callable[..., Config], *, sop_: list[dict[str, Any]] = (), **sections: Any) -> Config:  # type: ignore[assignment]
    config = make_config(operators={"admins": ["sandbox:op1"]}, **sections)
    return config.model_copy(update={"sop": SiyuConfig.model_validate({"sop": list(sop_)}).sop})


async def groups(bot: SandboxClient, n: int, prefix: str = "g") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(1, n + 1)]
    for chat in ids:
        await bot.event("member_joined", f"m-{chat}", chat=chat)
    return ids


async def op(bot: SandboxClient, text: str) -> str:
    return "\n".join(r["text"] for r in await bot.say("op1", text) if r.get("to") == "op1")


async def received(bot: SandboxClient, text_prefix: str) -> Counter[str]:
    """How many messages starting with ``text_prefix`` each group got."""
    await bot.deliver()
    async with bot.db.read() as s:
        rows = (await s.execute(select(OutboxMessage.chat).where(
            OutboxMessage.status == "delivered", OutboxMessage.text.startswith(text_prefix)))).scalars()
        return Counter(rows)


async def test_a_broadcast_reaches_500_groups_exactly_once(make_config: Callable[..., Config],
                                                           clock: FakeClock) -> None:
    async with sandbox_app(config_with(make_config), clock=clock) as bot:
        chats = await groups(bot, 500)
        assert "只有运营及以上可以使用" in (await bot.say("m-g1", "/broadcast all 你好"))[0]["text"]
        assert "用法" in await op(bot, "/broadcast nowhere")
        preview = await op(bot, "/broadcast all 【今日话题】{group}的朋友，你最喜欢哪款新品？")
        assert "将发到 500 个群" in preview and "——\n【今日话题】本群的朋友" in preview
        started = await op(bot, "确认")
        assert "500 个群，500 个直接发送，0 个等群主确认，0 个跳过" in started
        got = await received(bot, "【今日话题】")
        assert set(got) == set(chats) and set(got.values()) == {1}
        assert "已送达 500" in await op(bot, "/broadcast status")


async def test_a_slot_planned_twice_at_once_is_planned_once(make_config: Callable[..., Config],
                                                            clock: FakeClock) -> None:
    config = config_with(make_config,
                         sop_=[{"name": "早安", "text": "早安 {group}，今天{weekday}", "cron": "0 9 * * *"}],
                         scheduler={"enabled": False})
    async with sandbox_app(config, clock=clock) as bot:
        await groups(bot, 20)
        clock.set(MONDAY_9)
        d, playbook = bot.dispatcher, config.sop[0]
        results = await asyncio.gather(*(sop.plan_slot(d.db, d.config, d.texts, playbook, MONDAY_9, now=clock.now())
                                         for _ in range(4)))
        assert sum(r is not None for r in results) == 1
        got = await received(bot, "早安 本群，今天周一")  # {group}: the group's name, or 本群 when unknown
        assert len(got) == 20 and set(got.values()) == {1}


async def test_missed_slots_are_caught_up_within_the_grace_or_reported(make_config: Callable[..., Config],
                                                                       clock: FakeClock) -> None:
    config = config_with(make_config, sop_=[{"name": "早安", "text": "早安话题", "cron": "0 9 * * *"}],
                         scheduler={"enabled": False, "misfire_grace_s": 3600})
    async with sandbox_app(config, clock=clock) as bot:
        await groups(bot, 3)
        d = bot.dispatcher
        clock.set(MONDAY_9 + timedelta(minutes=1))
        assert await sop.catch_up(d.db, d.config, d.texts, clock.now()) == 1  # a first run: this morning's slot
        clock.set(MONDAY_9 + timedelta(days=3, minutes=30))  # down Tuesday and Wednesday, back Thursday 09:30
        assert await sop.catch_up(d.db, d.config, d.texts, clock.now()) == 1
        assert await sop.catch_up(d.db, d.config, d.texts, clock.now()) == 0  # once
        clock.set(MONDAY_9 + timedelta(days=4, hours=2))  # Friday 11:00: past the grace
        assert await sop.catch_up(d.db, d.config, d.texts, clock.now()) == 0
        async with bot.db.read() as s:
            slots = (await s.execute(select(Broadcast.slot, Broadcast.status, Broadcast.reason)
                                     .order_by(Broadcast.slot))).all()
        assert [(slot.astimezone(timezone(timedelta(hours=8))).day, status) for slot, status, _ in slots] == [
            (23, "planned"), (24, "missed"), (25, "missed"), (26, "planned"), (27, "missed")]
        assert "coalesced" in slots[1].reason and "misfire_grace_s" in slots[4].reason
        got = await received(bot, "早安话题")
        assert set(got.values()) == {2}  # Monday's and Thursday's, nothing else


async def test_quiet_hours_hold_a_broadcast_until_morning(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(config_with(make_config), clock=clock) as bot:
        await groups(bot, 2)
        clock.set(datetime(2026, 11, 22, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai
        await op(bot, "/broadcast all 晚安")
        await op(bot, "确认")
        assert await received(bot, "晚安") == Counter()
        clock.set(datetime(2026, 11, 22, 23, 59, tzinfo=UTC))  # 07:59
        assert await received(bot, "晚安") == Counter()
        clock.set(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))  # 08:00: quiet hours are over
        assert await received(bot, "晚安") == Counter({"g1": 1, "g2": 1})


async def test_the_per_group_daily_cap_skips_and_says_why(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(config_with(make_config, scheduler={"per_group_daily_cap": 1}), clock=clock) as bot:
        await groups(bot, 2)
        await op(bot, "/broadcast g1 第一条")
        await op(bot, "确认")
        await op(bot, "/broadcast all 第二条")
        assert "1 个直接发送，0 个等群主确认，1 个跳过" in await op(bot, "确认")
        assert await received(bot, "第二条") == Counter({"g2": 1})
        async with bot.db.read() as s:
            skipped = (await s.execute(select(Delivery.reason).where(Delivery.status == "skipped"))).scalar_one()
        assert skipped == "daily cap: 1 a day for this group"


async def test_a_broadcast_by_tag_and_its_cancellation(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = config_with(make_config, sandbox={"send_rate_per_s": 1000.0})
    async with sandbox_app(config, clock=clock) as bot:
        await groups(bot, 4)
        assert "已更新 2 个群的标签「上海」，1 个群ID没有找到" in await op(bot, "/grouptag add 上海 g1,g3,g9")
        await op(bot, "/broadcast tag:上海 上海门店活动")
        started = await op(bot, "确认")
        assert "2 个群" in started
        assert await received(bot, "上海门店活动") == Counter({"g1": 1, "g3": 1})
        first = int(re.search(r"#(\d+)", started).group(1))  # type: ignore[union-attr]
        # Everything went out: nothing to cancel, and the broadcast stays delivered.
        assert "没有可以取消的了" in await op(bot, f"/broadcast cancel {first}")
        assert "已送达" in await op(bot, f"/broadcast status {first}")
        clock.set(datetime(2026, 11, 22, 15, 0, tzinfo=UTC))  # 23:00: held for the morning
        await op(bot, "/broadcast all 明早见")
        await op(bot, "确认")
        async with bot.db.read() as s:
            latest = (await s.execute(select(Broadcast.id).order_by(Broadcast.id.desc()).limit(1))).scalar_one()
        report = await op(bot, f"/broadcast cancel {latest}")
        assert "已取消 4" in report and "撤回 4 条" in report
        clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
        assert await received(bot, "明早见") == Counter()


async def test_a_sweep_of_day_n_playbooks_plans_each_group_once(make_config: Callable[..., Config],
                                                                clock: FakeClock) -> None:
    config = config_with(make_config, scheduler={"enabled": False},
                         sop_=[{"name": "新群第三天", "text": "第三天快乐", "after_group_created_days": 3},
                               {"name": "入群次日", "text": "昨天加入的朋友你好", "after_member_joined_days": 1}])
    async with sandbox_app(config, clock=clock) as bot:
        await groups(bot, 2)
        d = bot.dispatcher
        clock.advance(days=2, hours=23)
        assert await sop.plan_relative(d.db, d.config, d.texts, clock.now()) == 2  # the members' day 1
        clock.advance(hours=2)
        assert await sop.plan_relative(d.db, d.config, d.texts, clock.now()) == 2  # the groups' day 3
        assert await sop.plan_relative(d.db, d.config, d.texts, clock.now()) == 0
        assert await received(bot, "第三天快乐") == Counter({"g1": 1, "g2": 1})
        assert len(await bot.outbox(to="m-g1")) >= 1


async def test_progress_counts_follow_the_outbox(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(config_with(make_config), clock=clock) as bot:
        await groups(bot, 3)
        await op(bot, "/broadcast all 进度")
        await op(bot, "确认")
        await bot.deliver()
        async with bot.db.read() as s:
            b = (await s.execute(select(Broadcast.id).where(Broadcast.source == "adhoc"))).scalar_one()
            assert await broadcasts.progress(s, b) == Counter({"delivered": 3})
        # The operator is told where it ended, once.
        assert await bot.app[JOBS].run("broadcast_reports") == 1
        assert await bot.app[JOBS].run("broadcast_reports") == 0
        told = [m["text"] for m in await bot.outbox(to="op1")]
        assert told[-1] == f"群发已全部发出或交给群主：群发 #{b}（已送达）共 3 个群：已送达 3"  # read from the groups
