"""Points behave like money: never lost, never doubled, never negative (DESIGN §6)."""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points
from storage.engine import Database
from storage.models import Member, PointEntry

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
_ids = itertools.count(1)


async def new_member(db: Database) -> int:
    async with db.transaction() as s:
        member = Member(channel="sandbox", external_id=f"p{next(_ids)}", first_seen_at=T0, last_seen_at=T0)
        s.add(member)
        await s.flush()
        assert member.id is not None
        return member.id


async def test_a_repeated_credit_counts_once(db: Database) -> None:
    m = await new_member(db)
    async with db.transaction() as s:
        assert (await points.credit(s, m, 100, key="task:1", reason="转发品牌文章",
                                    now=T0)) == points.Posted(True, 100, 100)
        assert (await points.credit(s, m, 100, key="task:1", reason="转发品牌文章",
                                    now=T0)) == points.Posted(False, 100, 100)
        assert await points.lifetime(s, m) == 100
        assert await points.check(s, m) == (100, 100, 100)


async def test_a_batch_of_credits_posts_each_key_once_and_keeps_the_ledger_whole(db: Database) -> None:
    a, b = await new_member(db), await new_member(db)
    later = T0 + timedelta(days=7)
    async with db.transaction() as s:
        await points.credit(s, a, 5, key="old", reason="之前", now=T0)
        totals = await points.credit_many(s, [
            points.Line(a, 10, "sign:a", "签到"), points.Line(a, 20, "pending:a", "晒单", available_at=later),
            points.Line(b, 10, "sign:b", "签到"), points.Line(b, 10, "sign:b", "签到（重复）"),
            points.Line(a, 99, "old", "重复的键"), points.Line(b, 3, "grant:b", "补发", kind=points.GRANT),
        ], now=T0)
    assert totals[a] == points.Totals(30, 15, 20, 35)
    assert totals[b] == points.Totals(13, 13, 0, 10)  # a grant counts in the balance, not toward levels
    async with db.read() as s:
        assert await points.check(s, a) == (35, 35, 35)
        assert await points.check(s, b) == (13, 13, 13)


async def test_a_batch_of_credits_to_an_unknown_member_fails_whole(db: Database) -> None:
    m = await new_member(db)
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await points.credit_many(s, [points.Line(m, 10, "x:1", "签到"), points.Line(10**6, 10, "x:2", "签到")],
                                     now=T0)
    async with db.read() as s:
        assert await points.balance(s, m) == 0


async def test_spending_takes_the_soonest_expiring_then_oldest_lots(db: Database) -> None:
    m = await new_member(db)
    async with db.transaction() as s:
        await points.credit(s, m, 50, key="a", reason="a", now=T0)  # never expires
        await points.credit(s, m, 30, key="b", reason="b", now=T0, expires_at=T0 + timedelta(days=30))
        await points.credit(s, m, 20, key="c", reason="c", now=T0, expires_at=T0 + timedelta(days=7))
        assert (await points.spend(s, m, 40, key="r1", reason="兑换", now=T0)).balance == 60
        remaining = dict((await s.execute(text("SELECT amount, remaining FROM point_lots WHERE member_id = :m"),
                                          {"m": m})).all())
    assert remaining == {50: 50, 30: 10, 20: 0}


async def test_a_spend_beyond_the_balance_takes_nothing(db: Database) -> None:
    m = await new_member(db)
    async with db.transaction() as s:
        await points.credit(s, m, 30, key="a", reason="a", now=T0)
        with pytest.raises(points.NotEnoughPoints):
            await points.spend(s, m, 31, key="r1", reason="兑换", now=T0)
        assert await points.check(s, m) == (30, 30, 30)
        assert (await points.spend(s, m, 30, key="r2", reason="兑换", now=T0)).balance == 0
        assert (await points.spend(s, m, 30, key="r2", reason="兑换", now=T0)) == points.Posted(False, 0)  # a retry
        assert await points.check(s, m) == (0, 0, 0)


async def test_expired_lots_stop_counting_with_an_entry(db: Database) -> None:
    m = await new_member(db)
    async with db.transaction() as s:
        await points.credit(s, m, 40, key="a", reason="a", now=T0, expires_at=T0 + timedelta(days=1))
        await points.credit(s, m, 10, key="b", reason="b", now=T0)
        await points.spend(s, m, 15, key="r", reason="兑换", now=T0)  # 15 of the expiring lot
        assert await points.expire(s, now=T0 + timedelta(hours=23)) == 0
        assert await points.expire(s, now=T0 + timedelta(days=1)) == 1
        assert await points.expire(s, now=T0 + timedelta(days=2)) == 0  # once
        assert await points.check(s, m) == (10, 10, 10)
        reasons = (await s.execute(select(PointEntry.reason, PointEntry.delta).where(PointEntry.member_id == m)
                                   .order_by(PointEntry.id))).all()
    assert reasons[-1] == ("积分过期", -25)


async def test_the_database_itself_refuses_a_negative_balance(db: Database) -> None:
    m = await new_member(db)
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO point_balances (member_id, balance, lifetime) VALUES (:m, -1, 0)"),
                            {"m": m})


operations = st.lists(st.tuples(st.sampled_from(["credit", "pending", "spend", "expire", "release", "retry"]),
                                st.integers(min_value=1, max_value=200), st.booleans()), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_ledger_invariants_hold_over_any_sequence(db: Database, ops: list[tuple[str, int, bool]]) -> None:
    m = await new_member(db)
    now = T0
    keys: list[str] = []
    for n, (op, amount, expiring) in enumerate(ops):
        now += timedelta(hours=6)
        async with db.transaction() as s:
            if op == "credit":
                keys.append(f"{m}:c{n}")
                await points.credit(s, m, amount, key=keys[-1], reason="x", now=now,
                                    expires_at=now + timedelta(hours=12) if expiring else None)
            elif op == "pending":  # spendable a day later; may expire before or after that
                keys.append(f"{m}:p{n}")
                await points.credit(s, m, amount, key=keys[-1], reason="x", now=now,
                                    available_at=now + timedelta(days=1),
                                    expires_at=now + timedelta(hours=12) if expiring else None)
            elif op == "release":
                await points.release(s, now=now)
            elif op == "spend":
                try:
                    await points.spend(s, m, amount, key=f"{m}:s{n}", reason="x", now=now)
                except points.NotEnoughPoints:
                    pass
            elif op == "expire":
                await points.expire(s, now=now)
            elif keys:  # a retried credit never counts twice
                await points.credit(s, m, amount, key=keys[-1], reason="x", now=now)
        async with db.read() as s:
            total, entries, lots = await points.check(s, m)
            balance, pending = await points.balance(s, m), await points.pending(s, m)
        assert total == entries == lots and balance >= 0 and pending >= 0


# -- daily sign-in ---------------------------------------------------------------------------------

@pytest.fixture
def signin_app(make_config: Callable[..., Config], clock: FakeClock) -> Callable[..., object]:
    return lambda **checkin: sandbox_app(make_config(signin=checkin), clock=clock)


async def test_sign_in_once_a_day_with_a_streak(signin_app: Callable[..., object], clock: FakeClock) -> None:
    async with signin_app() as bot:  # type: ignore[attr-defined]
        assert await say(bot, "签到", chat="g1") == "签到成功！+10 积分，已连续签到 1 天，当前积分 10。"
        assert await say(bot, "签到", chat="g1") == "今天已经签到过啦，明天再来～ 已连续签到 1 天，当前积分 10。"
        clock.advance(days=1)
        assert "已连续签到 2 天，当前积分 20" in await say(bot, "签到")  # one-to-one works too
        clock.advance(days=2)  # a day missed: the streak starts again
        assert "已连续签到 1 天，当前积分 30" in await say(bot, "签到", chat="g1")


async def test_a_streak_milestone_pays_its_bonus(signin_app: Callable[..., object], clock: FakeClock) -> None:
    async with signin_app(streak_bonus={"3": 25}) as bot:  # type: ignore[attr-defined]
        for _ in range(2):
            await say(bot, "签到")
            clock.advance(days=1)
        reply = await say(bot, "签到")
    assert reply == "签到成功！+10 积分（连续 3 天奖励 +25），已连续签到 3 天，当前积分 55。"


async def test_days_are_local_days(signin_app: Callable[..., object], clock: FakeClock) -> None:
    clock.set(datetime(2026, 11, 22, 15, 59, tzinfo=UTC))  # 23:59 in Shanghai
    async with signin_app() as bot:  # type: ignore[attr-defined]
        await say(bot, "签到")
        clock.advance(minutes=2)  # 00:01 the next day in Shanghai, the same UTC day
        assert "已连续签到 2 天" in await say(bot, "签到")


async def test_a_hundred_concurrent_sign_ins_credit_once(signin_app: Callable[..., object]) -> None:
    async with signin_app() as bot:  # type: ignore[attr-defined]
        replies = await asyncio.gather(*(bot.say("u1", "签到", chat="g1") for _ in range(100)))
        assert sum(r[0]["text"].startswith("签到成功") for r in replies) == 1
        async with bot.db.read() as s:
            member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
            assert await points.check(s, member.id) == (10, 10, 10)


async def say(bot: SandboxClient, text: str, chat: str | None = None) -> str:
    [reply] = await bot.say("u1", text, chat=chat)
    return reply["text"]


async def test_a_level_up_is_celebrated_in_the_group(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config(signin={"daily_points": 300}, levels={"tiers": [{"name": "白银", "min_points": 0},
                                                                          {"name": "白金", "min_points": 500}]})
    async with sandbox_app(config, clock=clock) as bot:
        first = await bot.say("u1", "签到", chat="g1", name="小王")
        assert len(first) == 1  # 300 lifetime points: still 白银
        clock.advance(days=1)
        second = [r["text"] for r in await bot.say("u1", "签到", chat="g1")]
        assert second[1] == "🎉 恭喜 小王 升级为「白金」会员！累计获得 600 积分。"
        async with bot.db.read() as s:
            member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
        assert member.attributes["level"] == "白金"


def test_tiers_must_start_at_zero_and_rise() -> None:
    from bot.builtin import config_from_dict
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="tiers start at min_points = 0"):
        config_from_dict({"levels": {"tiers": [{"name": "A", "min_points": 10}]}})
    with pytest.raises(ConfigError, match="rise strictly"):
        config_from_dict({"levels": {"tiers": [{"name": "A", "min_points": 0}, {"name": "B", "min_points": 0}]}})


async def test_the_job_expires_points_once(make_config: Callable[..., Config], clock: FakeClock) -> None:
    from bot.appkeys import JOBS

    async with sandbox_app(make_config(), clock=clock) as bot:
        await bot.say("u1", "你好")
        async with bot.db.transaction() as s:
            member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
            await points.credit(s, member.id, 80, key="promo", reason="活动", now=clock.now(),
                                expires_at=clock.now() + timedelta(days=30))
        jobs = bot.app[JOBS]
        assert await jobs.run("points_expiry") == 0
        clock.advance(days=31)
        assert await jobs.run("points_expiry") == 1
        assert await jobs.run("points_expiry") == 0
        async with bot.db.read() as s:
            assert await points.check(s, member.id) == (0, 0, 0)
