"""The console's numbers: a week of a small community, rolled up and read back as an operator
would see them (both databases)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest
from sqlalchemy import func, select

from bot.appkeys import DISPATCHER
from bot.config import Config
from bot.console import rollups as metrics_rollup
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import dashboard
from storage.models import DailyMetric, SignIn

D0 = date(2026, 11, 22)  # the fake clock's first day, in Asia/Shanghai


async def roll(bot: SandboxClient) -> None:
    d = bot.app[DISPATCHER]
    await metrics_rollup.refresh(bot.db, d.config, d.texts, d.clock.now())


@pytest.fixture
async def week(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    """Three members from two channel codes; one signs in twice and comes back on day 7; one is lost."""
    async with sandbox_app(make_config(), clock=clock) as bot:
        for who, code in (("a1", "渠道A"), ("a2", "渠道A"), ("b1", "渠道B")):
            await bot.event("contact_added", who, state=code)
        await bot.say("a1", "签到", chat="g1")
        await bot.say("a2", "早", chat="g1")
        await bot.say("b1", "你好", chat="g2")
        clock.advance(days=1)
        await bot.say("a1", "签到", chat="g1")
        await bot.event("contact_lost", "b1")
        clock.advance(days=6)
        await bot.say("a1", "早上好", chat="g1")
        clock.advance(days=1)
        await roll(bot)
        yield bot


async def test_days_count_new_lost_active_and_sign_ins(week: SandboxClient) -> None:
    async with week.db.read() as s:
        numbers = await dashboard.series(s, D0, D0.replace(day=29))
        sign_in_points = (await s.execute(select(func.sum(SignIn.points)).where(SignIn.day == D0))).scalar_one()
    d1 = D0.replace(day=23)
    assert numbers["new_by_code"][D0] == {"渠道A": 2, "渠道B": 1}
    assert numbers["new_by_channel"][D0] == {"sandbox": 3}
    assert numbers["lost"][d1] == {"": 1} and D0 not in numbers["lost"]
    assert numbers["members"][D0] == {"": 3} and numbers["members"][d1] == {"": 2}
    assert numbers["active"][D0] == {"": 3} and numbers["active"][d1] == {"": 1}
    assert numbers["checkins"][D0] == {"": 1} and numbers["checkins"][d1] == {"": 1}
    assert numbers["points_issued"][D0] == {"": sign_in_points} and sign_in_points > 0


async def test_cohorts_come_back_by_channel_code(week: SandboxClient) -> None:
    async with week.db.read() as s:
        by_day, by_code = await dashboard.retention(s, D0, D0)
    assert [(r.label, r.size, r.back) for r in by_day] == [("2026-11-22", 3, {"d1": 1, "d7": 1, "d30": 0})]
    assert by_day[0].known == {"d1": 3, "d7": 3, "d30": 0}  # day 30 has not come yet
    assert by_day[0].rate("d30") is None
    a, b = by_code
    assert (a.label, a.size, a.rate("d1"), a.rate("d7")) == ("渠道A", 2, 0.5, 0.5)
    assert (b.label, b.size, b.rate("d1")) == ("渠道B", 1, 0.0)


async def test_groups_show_their_7_day_activity_rate_and_silence(week: SandboxClient, clock: FakeClock) -> None:
    today = clock.now().date()
    async with week.db.read() as s:
        rows, total = await dashboard.groups(s, today, sort="rate", descending=True)
        counts = await dashboard.group_counts(s, today, size_limit=2)
    assert total == 2
    assert [(g.external_id, g.members, g.active_7d, g.rate) for g in rows] == [("g1", 2, 1, 0.5), ("g2", 1, 0, 0.0)]
    assert counts == {"groups": 2, "silent": 1, "near_limit": 1}  # g1 has 2 of 2


async def test_a_second_run_changes_nothing_and_new_activity_shows_on_the_next(
    week: SandboxClient, clock: FakeClock,
) -> None:
    async with week.db.read() as s:
        before = sorted((await s.execute(select(DailyMetric.day, DailyMetric.metric, DailyMetric.dimension,
                                                DailyMetric.value))).all())
    await roll(week)
    async with week.db.read() as s:
        assert sorted((await s.execute(select(DailyMetric.day, DailyMetric.metric, DailyMetric.dimension,
                                              DailyMetric.value))).all()) == before
    clock.advance(days=1)
    await week.say("a2", "我回来了", chat="g1")
    await roll(week)
    async with week.db.read() as s:
        today = clock.now().date()
        assert (await dashboard.series(s, today, today))["active"][today] == {"": 1}
        rows, _ = await dashboard.groups(s, today, sort="name")
        assert rows[0].active_7d == 2
        assert (await dashboard.daily_messages(s, [rows[0].id], today, today))[rows[0].id] == [1]
