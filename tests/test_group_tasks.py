"""WeCom customer groups: only owner-confirmed tasks reach them (DESIGN §3). A day's items are
merged into one digest per group, packed into one task per owner, held to the quota, followed
up until the owner confirms, reminded, or expired."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import wecom_section
from sqlalchemy import select

from bot.appkeys import CHANNELS, JOBS
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from handlers.broadcasts import digests
from storage.models import Delivery, Group, OutboxMessage

# Groups: two of zhangsan's, one of lisi's, one whose owner siyu does not know.
GROUPS = [("wrA", "zhangsan"), ("wrB", "zhangsan"), ("wrC", "lisi"), ("wrD", None)]


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    wecom = wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00", "remind_after_h": 2,
                                                      "expire_after_h": 24})
    config = make_config(wecom=wecom, operators={"admins": ["sandbox:op1", "wecom:op1"]}, scheduler={"enabled": False})
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            for chat, owner in GROUPS:
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner=owner,
                            created_at=clock.now(), last_active_at=clock.now()))
        yield client


async def broadcast(bot: SandboxClient, text: str) -> str:
    await bot.say("op1", f"/broadcast all {text}")
    return next(r["text"] for r in await bot.say("op1", "确认") if r.get("to") == "op1")


async def statuses(bot: SandboxClient) -> dict[tuple[str, int], str]:
    async with bot.db.read() as s:
        rows = (await s.execute(select(Group.external_id, Delivery.broadcast_id, Delivery.status)
                                .join(Group, Group.id == Delivery.group_id))).all()
    return {(chat, b): status for chat, b, status in rows}


async def test_a_days_items_become_one_task_per_owner_followed_until_confirmed(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    started = await broadcast(bot, "【话题一】{group}聊聊新品")  # Sunday 10:00: for Monday's 09:00 digest
    assert "0 个直接发送，4 个等群主确认" in started and "群主在企业微信里确认" not in started
    await broadcast(bot, "【话题二】周末愉快")
    jobs = bot.app[JOBS]
    assert await jobs.run("owner_tasks") == 0  # not yet the digest's time
    clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # Monday 09:00
    assert await jobs.run("owner_tasks") == 3  # wrA+wrB (their texts differ), wrC
    await bot.deliver()
    calls = [c.body for c in fake.calls("externalcontact/add_msg_template")]
    assert sorted((c["sender"], tuple(c["chat_id_list"])) for c in calls) == [
        ("lisi", ("wrC",)), ("zhangsan", ("wrA",)), ("zhangsan", ("wrB",))]
    digest = next(c["text"]["content"] for c in calls if c["chat_id_list"] == ["wrA"])
    assert digest == "【话题一】客户群A聊聊新品\n\n【话题二】周末愉快"  # one message for the day's two items
    state = await statuses(bot)
    assert {s for (chat, _), s in state.items() if chat != "wrD"} == {"awaiting_owner"}
    assert {s for (chat, _), s in state.items() if chat == "wrD"} == {"skipped"}  # nobody to confirm

    owner_tasks = bot.app[CHANNELS]["wecom"].owner_tasks  # type: ignore[attr-defined]
    fake.confirm_tasks("zhangsan")
    assert await owner_tasks.poll_once() == 2
    state = await statuses(bot)
    assert {state[("wrA", 1)], state[("wrB", 2)], state[("wrC", 1)]} == {"delivered", "awaiting_owner"}
    assert state[("wrC", 1)] == "awaiting_owner"

    clock.advance(hours=3)  # lisi has not confirmed: reminded, at most 3 times in 24 h
    for _ in range(5):
        await owner_tasks.poll_once()
        clock.advance(hours=2, minutes=1)
    assert len(fake.calls("externalcontact/remind_groupmsg_send")) == 3
    clock.advance(hours=24)
    await owner_tasks.poll_once()
    assert (await statuses(bot))[("wrC", 1)] == "expired"
    async with bot.db.read() as s:
        tasks = dict((await s.execute(select(OutboxMessage.to, OutboxMessage.status)
                                      .where(OutboxMessage.kind == "group_task"))).all())
    assert tasks["lisi"] == "failed"


async def test_the_quota_holds_a_group_to_one_mass_message_a_day(bot: SandboxClient, fake: FakeWeCom,
                                                                 clock: FakeClock) -> None:
    jobs = bot.app[JOBS]
    clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # Monday 09:00, the digest's time
    await broadcast(bot, "第一条")
    assert await jobs.run("owner_tasks") == 2
    clock.advance(hours=1)
    await broadcast(bot, "第二条")  # 10:00: after today's digest, so tomorrow's
    clock.advance(hours=23)
    await broadcast(bot, "第三条")  # Tuesday 09:00 too
    assert await jobs.run("owner_tasks") == 2  # 第二条 + 第三条 in one digest
    await bot.deliver()
    texts = [c.body["text"]["content"] for c in fake.calls("externalcontact/add_msg_template")]
    assert texts.count("第二条\n\n第三条") == 2
    clock.advance(hours=1)
    await broadcast(bot, "第四条")
    clock.advance(days=1)
    assert await jobs.run("owner_tasks") == 2  # Wednesday: a new day's quota
    clock.advance(minutes=1)
    await broadcast(bot, "第五条")  # Wednesday 09:01: past the digest, for Thursday
    async with bot.db.read() as s:
        due = (await s.execute(select(Delivery.not_before).where(Delivery.status == "planned"))).scalars().all()
    assert {d.astimezone(timezone(timedelta(hours=8))).strftime("%d %H:%M") for d in due} == {"26 09:00"}


async def test_two_processes_packing_at_once_spend_each_groups_quota_once(
    bot: SandboxClient, clock: FakeClock, database_url: str, on_postgres: bool,
) -> None:
    if not on_postgres:
        pytest.skip("two processes share one database on PostgreSQL only")
    from storage.engine import Database

    await broadcast(bot, "今天的话题")
    clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # Monday 09:00, the digest's time
    other = Database(database_url)  # another process's connections
    try:
        d = bot.app[JOBS].dispatcher
        queued = await asyncio.gather(*(digests.pack_owner_tasks(db, d.config, d.texts, clock.now())
                                        for db in (bot.db, other)))
    finally:
        await other.dispose()
    assert sorted(queued) == [0, 2]  # one packed zhangsan's and lisi's tasks; the other found nothing due
    async with bot.db.read() as s:
        tasks = (await s.execute(select(OutboxMessage.to).where(OutboxMessage.kind == "group_task"))).scalars().all()
    assert sorted(tasks) == ["lisi", "zhangsan"]
