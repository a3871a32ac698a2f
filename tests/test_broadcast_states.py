"""Where broadcasts and playbooks stand, as operators read it in the console's 群发 page and in
chat: the state from the groups' deliveries, the text the groups got, the source in Chinese, no
empty winners announcements, and a one-shot playbook that has run."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.broadcasts import playbooks as sop
from handlers.broadcasts.services import state_of
from storage.models import Broadcast

PASSWORD = "operator-password-1"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         console={"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def broadcasts_page(bot: SandboxClient) -> str:
    return await bot.console_page("/console/broadcasts", name="ops", password=PASSWORD)


def row(html: str, broadcast_id: int) -> str:
    found = re.search(rf'<tr id="broadcast-{broadcast_id}">(.*?)</tr>', html, re.S)
    assert found, f"no row for broadcast #{broadcast_id}"
    return found.group(1)


def cell(html: str, cls: str) -> str:
    found = re.search(rf'<td class="{cls}[^"]*">(.*?)</td>', html, re.S)
    assert found, cls
    return found.group(1).strip()


async def test_a_delivered_broadcast_reads_delivered_with_the_text_the_groups_got(bot: SandboxClient) -> None:
    for chat in ("g1", "g2"):
        await bot.event("member_joined", f"m-{chat}", chat=chat)
    await bot.say("op1", "/broadcast all 【今日话题】{group}的朋友，{weekday}好！")
    await bot.say("op1", "确认")
    await bot.deliver()
    async with bot.db.read() as s:
        b = (await s.execute(select(Broadcast.id))).scalar_one()
    html = row(await broadcasts_page(bot), b)
    assert cell(html, "state") == "已送达"
    assert cell(html, "source") == "运营群发"
    assert "【今日话题】本群的朋友，周日好！" in html and "{group}" not in html and "{weekday}" not in html
    told = "\n".join(r["text"] for r in await bot.say("op1", f"/broadcast status {b}"))
    assert f"群发 #{b}（已送达）共 2 个群" in told


async def test_a_broadcast_waiting_out_quiet_hours_reads_planned_then_delivered(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    clock.set(datetime(2026, 11, 22, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai, inside the quiet hours
    config = make_config(operators={"admins": ["sandbox:op1"]}, scheduler={"quiet_hours": ["22:00", "08:00"]},
                         console={"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.event("member_joined", "m-g1", chat="g1")
        await bot.say("op1", "/broadcast all 早上好")
        await bot.say("op1", "确认")
        await bot.deliver()
        async with bot.db.read() as s:
            b = (await s.execute(select(Broadcast.id))).scalar_one()
        assert cell(row(await broadcasts_page(bot), b), "state") == "已排期"
        clock.advance(hours=10)
        await bot.deliver()
        assert cell(row(await broadcasts_page(bot), b), "state") == "已送达"


def test_the_state_follows_the_groups_deliveries() -> None:
    planned = Broadcast(id=1, key="k", source="adhoc", slot=datetime.now(UTC), template="t", target={},
                        status="planned", created_by="sandbox:op1", created_at=datetime.now(UTC))
    cases = {
        "empty": {},
        "planned": {"planned": 3},
        "sending": {"queued": 1, "delivered": 2},
        "awaiting_owner": {"delivered": 2, "awaiting_owner": 1},
        "delivered": {"delivered": 3},
        "partly": {"delivered": 2, "expired": 1},
        "failed": {"failed": 2, "expired": 1},
        "skipped": {"skipped": 3},
    }
    now = datetime.now(UTC)
    for state, counts in cases.items():
        assert state_of(planned, counts, waits_until=now + timedelta(hours=1), now=now) == state, counts
    assert state_of(planned, {"queued": 3}, waits_until=now, now=now) == "sending"  # their time has come
    assert state_of(planned.model_copy(update={"status": "cancelled"}), {"cancelled": 2}) == "cancelled"
    assert state_of(planned.model_copy(update={"status": "preview"}), {}) == "preview"


async def test_no_winners_announcement_without_winners(bot: SandboxClient, clock: FakeClock) -> None:
    """A first start finds last week and last month ended with nobody on the board: nothing is
    created, so the operator's first broadcast is #1."""
    assert await bot.app[JOBS].run("winners") == 0
    async with bot.db.read() as s:
        assert (await s.execute(select(Broadcast))).scalars().all() == []
    await bot.event("member_joined", "m-g0", chat="g0")
    assert "群发 #1 " in "\n".join(r["text"] for r in await bot.say("op1", "/broadcast g0 你好"))
    # Someone signs in this week: next Monday the week's winners are announced, labelled so.
    await bot.say("op1", "确认")
    await bot.say("u1", "签到", chat="g1", name="小美")
    clock.set(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))  # Monday 12:00 in Shanghai
    assert await bot.app[JOBS].run("winners") == 1
    async with bot.db.read() as s:
        winners = (await s.execute(select(Broadcast).where(Broadcast.created_by == "system:winners"))).scalar_one()
    await bot.deliver()
    html = row(await broadcasts_page(bot), winners.id)
    assert cell(html, "source") == "积分榜获奖公告" and "小美" in html and "{leaderboard}" not in html


async def test_a_one_shot_playbook_reads_finished_after_it_ran(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    at = clock.now() + timedelta(hours=1)
    # The slot is planned by hand below: APScheduler runs on the wall clock, not the fake one.
    config = make_config(operators={"admins": ["sandbox:op1"]}, scheduler={"enabled": False})
    config = config.model_copy(update={"sop": SiyuConfig.model_validate(
        {"sop": [{"name": "新品发布", "text": "新品今天上架！", "at": at},
                 {"name": "早安", "text": "早上好", "cron": "0 9 * * *"}]}).sop})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.event("member_joined", "m-g1", chat="g1")
        before = "\n".join(r["text"] for r in await bot.say("op1", "/sop list"))
        assert "「新品发布」2026-11-22 11:00（一次）：待发送" in before and "「早安」0 9 * * *：运行中" in before
        clock.advance(hours=2)
        d = bot.dispatcher
        await sop.plan_slot(d.db, d.config, d.texts, d.config.sop[0], at, now=clock.now())
        await bot.deliver()
        after = "\n".join(r["text"] for r in await bot.say("op1", "/sop list"))
        assert "「新品发布」2026-11-22 11:00（一次）：已发出，最近一次 11-22 11:00 已送达" in after
        assert "运行中" in after.split("「早安」")[1]
