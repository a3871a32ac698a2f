"""The group robot: reports and alerts into the operators' group, within 20 messages a minute."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from storage import koc
from storage.models import Group, Member, OutboxMessage

KEY = "robot-key-123"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom() as server:
        server.robot_keys.add(KEY)
        yield server


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(robot={"enabled": True, "key": KEY, "api_base_url": fake.base_url, "daily_report_at": "09:00"},
                         operators={"admins": ["sandbox:op1", "wecom:op1"]},
                         scheduler={"enabled": False, "quiet_hours": []})
    async with sandbox_app(config, clock=clock) as client:
        yield client


def posted(fake: FakeWeCom) -> list[str]:
    return [body["text"]["content"] for _, body in fake.robot_posts.get(KEY, [])]


async def test_reports_and_alerts_reach_the_operators_group(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    await bot.say("u1", "签到", name="小王")
    async with bot.db.transaction() as s:
        m = (await s.execute(select(Member.id).where(Member.external_id == "u1"))).scalar_one()
        await koc.submit(s, m, score=75, recommended_type="内容官", answers={}, now=clock.now())
    jobs = bot.app[JOBS]
    done = {name: await jobs.run(name) for name in ("robot_daily", "robot_koc")}
    assert (done["robot_koc"], done["robot_daily"]) == (1, 1)  # Sunday 10:00: past today's 09:00 report
    assert await jobs.run("robot_koc") == 0  # each application once
    await bot.deliver()
    texts = posted(fake)
    assert any(t.startswith("🧑‍💼 1 个新的 KOC 申请待审核") and "小王：75 分，推荐内容官" in t for t in texts)
    assert any(t.startswith("📊 11月22日 社群日报\n【今天】新增成员：无渠道码 1") for t in texts)
    clock.set(datetime(2026, 11, 23, 0, 59, tzinfo=UTC))  # Monday 08:59
    assert await jobs.run("robot_daily") == 0
    clock.advance(minutes=1)
    assert await jobs.run("robot_daily") == 1


async def test_a_broadcast_with_failures_raises_an_alert(bot: SandboxClient, fake: FakeWeCom, clock: FakeClock) -> None:
    await bot.event("member_joined", "u1", chat="g1")
    async with bot.db.transaction() as s:  # a group reached through a channel this process has not configured
        s.add(Group(channel="bridge", external_id="room-9", created_at=clock.now(), last_active_at=clock.now()))
    await bot.say("op1", "/broadcast all 通知")
    await bot.say("op1", "确认")
    await bot.deliver()
    assert await bot.app[JOBS].run("robot_broadcasts") == 1
    assert await bot.app[JOBS].run("robot_broadcasts") == 0  # once
    await bot.deliver()
    alert = [t for t in posted(fake) if t.startswith("⚠️ 群发")]
    assert len(alert) == 1 and "1 个群送达，1 个失败" in alert[0] and "not configured" in alert[0]


async def test_the_robot_keeps_to_its_limits_and_errors(bot: SandboxClient, fake: FakeWeCom) -> None:
    from bot.appkeys import CHANNELS

    robot = bot.app[CHANNELS]["robot"]
    assert robot.rate_per_s * 60 < 20  # paced: no minute sees more than WeCom's 20
    fake.robot_posts[KEY] = [(float("inf"), {})] * 20  # 20 posts "just now": the minute is full, WeCom answers 45009
    async with bot.db.transaction() as s:
        from storage import outbox

        now = bot.dispatcher.clock.now()
        await outbox.enqueue(s, [outbox.Outgoing("robot", "警报", chat="ops"),
                                 outbox.Outgoing("robot", "别处", chat="g1")],
                             now=now)
    await bot.deliver()  # (whichever pass sends them, the background worker's or this one)
    async with bot.db.read() as s:
        rows = {r.text: r for r in (await s.execute(select(OutboxMessage)
                                                    .where(OutboxMessage.channel == "robot"))).scalars()}
    assert rows["警报"].status == "pending" and "45009" in rows["警报"].last_error
    assert (rows["警报"].not_before - bot.dispatcher.clock.now()).total_seconds() >= 60  # backs off a minute
    assert rows["别处"].status == "failed" and "only into 'ops'" in rows["别处"].last_error
