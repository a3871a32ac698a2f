"""Lifecycle stages: derived from sign-in days, purchases and KOC status, kept by a job."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from handlers.lifecycle.config import LifecycleConfig
from handlers.lifecycle.stages import BROAD, CORE, ENGAGED, SUPER, refresh, stage_of
from storage import community, koc
from storage.models import Member


def test_stages_follow_the_rules() -> None:
    rules = LifecycleConfig(window_days=30, engaged_days=3, core_days=10)
    assert stage_of(rules, active_days=2, bought=False, koc=False) == BROAD
    assert stage_of(rules, active_days=3, bought=False, koc=False) == ENGAGED
    assert stage_of(rules, active_days=0, bought=True, koc=False) == ENGAGED
    assert stage_of(rules, active_days=10, bought=False, koc=False) == ENGAGED  # active, but never bought
    assert stage_of(rules, active_days=10, bought=True, koc=False) == CORE
    assert stage_of(rules, active_days=0, bought=False, koc=True) == SUPER


async def test_the_job_keeps_stages_as_members_act_and_drift(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         lifecycle={"window_days": 10, "engaged_days": 2, "core_days": 4, "purchase_tasks": ["晒单"]})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "晒单", "points": 50}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        d = bot.dispatcher

        async def stages() -> dict[str, str | None]:
            await refresh(d.db, d.config, d.texts, clock.now())
            async with bot.db.read() as s:
                return dict((await s.execute(select(Member.external_id, Member.stage))).all())

        for day in range(4):
            await bot.say("buyer", "签到")
            await bot.say("fan", "签到")
            await bot.say("lurker", "你好")
            if day == 0:
                await bot.say("buyer", "打卡 晒单")
            clock.advance(days=1)
        async with bot.db.transaction() as s:
            kol = (await s.execute(select(Member.id).where(Member.external_id == "lurker"))).scalar_one()
            application = await koc.submit(s, kol, score=80, recommended_type="分享官", answers={}, now=clock.now())
            await koc.decide(s, application, approve=True, decided_by="op1", now=clock.now(), approved_type="分享官")
        assert await stages() == {"buyer": CORE, "fan": ENGAGED, "lurker": SUPER}
        clock.advance(days=8)  # the sign-ins fall out of the window
        assert (await stages())["buyer"] == ENGAGED  # still bought
        clock.advance(days=3)
        assert (await stages())["fan"] == BROAD
        await bot.say("fan", "我买过了")  # back, and (as KOC screening would record) bought
        async with bot.db.transaction() as s:
            fan = (await s.execute(select(Member.id).where(Member.external_id == "fan"))).scalar_one()
            await community.set_attributes(s, fan, {"bought": True})
        assert (await stages())["fan"] == ENGAGED
        report = (await bot.say("op1", "/stages"))[0]["text"]
        assert report.splitlines()[1:] == ["超级用户：1 人", "核心用户：0 人", "精准用户：2 人", "泛用户：1 人"]


async def test_a_stage_rises_at_once_when_what_decides_it_happens(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    """No job runs here: a purchase check-in, a KOC approval, the sign-in that reaches
    engaged_days and a KOC screening answered "买过" each move the stage in their own update."""
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         lifecycle={"window_days": 10, "engaged_days": 2, "core_days": 4, "purchase_tasks": ["晒单"]})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "晒单", "points": 50}, {"name": "转发", "points": 5}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:

        async def stage(who: str) -> str | None:
            async with bot.db.read() as s:
                return (await s.execute(select(Member.stage).where(Member.external_id == who))).scalar_one()

        await bot.say("buyer", "打卡 转发")
        assert await stage("buyer") in (None, BROAD)  # not a purchase task
        await bot.say("buyer", "打卡 晒单")
        assert await stage("buyer") == ENGAGED
        await bot.say("fan", "签到")
        assert await stage("fan") in (None, BROAD)
        clock.advance(days=1)
        await bot.say("fan", "签到")  # the second day: engaged_days
        assert await stage("fan") == ENGAGED
        assert "分层：精准用户" in (await bot.say("op1", "/member fan"))[0]["text"]
        await bot.say("kol", "申请KOC")
        for answer in ["1", "空气炸锅", "1", "1 2", "5000", "3", "6"]:  # bought: 精准用户 at once
            await bot.say("kol", answer)
        assert await stage("kol") == ENGAGED
        await bot.say("op1", "/koc approve kol")
        assert await stage("kol") == SUPER
