"""A redemption rush decided a batch at a time (``storage.reservations``): concurrent batches on
one reward (on PostgreSQL really concurrent, each its own transaction) serve exactly the stock,
charge each winner once, and charge nobody else; a retried confirmation is answered as before."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from sqlalchemy import func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points, reservations, rewards
from storage.models import Member, PointEntry, Redemption, Reward

STOCK, COST = 30, 100


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config().model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "爆款空气炸锅", "cost": COST, "stock": STOCK}]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def members_with(bot: SandboxClient, amounts: Sequence[int]) -> list[int]:
    """Members holding ``amounts`` points each (one transaction for all)."""
    now = bot.dispatcher.clock.now()
    async with bot.db.transaction() as s:
        ids = []
        for i, amount in enumerate(amounts):
            member = Member(channel="sandbox", external_id=f"rush{i}", name=f"成员{i}", first_seen_at=now,
                            last_seen_at=now)
            s.add(member)
            await s.flush()
            await points.credit(s, member.id, amount, key=f"grant:{i}", reason="测试", now=now)
            ids.append(member.id)
    return ids


async def decide(bot: SandboxClient, asks: list[reservations.Ask]) -> list[reservations.Outcome]:
    """What the dispatcher does with a batch: all together, and if the batch fails (a key taken
    by a concurrent batch), each ask again on its own."""
    now = bot.dispatcher.clock.now()
    try:
        async with bot.db.transaction() as s:
            return await reservations.redeem_many(s, asks, now=now)
    except Exception:
        alone = []
        for ask in asks:
            async with bot.db.transaction() as s:
                alone += await reservations.redeem_many(s, [ask], now=now)
        return alone


async def test_concurrent_batches_serve_exactly_the_stock(shop: SandboxClient) -> None:
    amounts = [COST] * 150 + [COST // 2] * 10  # ten cannot afford it
    ids = await members_with(shop, amounts)
    async with shop.db.read() as s:
        reward_id = (await s.execute(select(Reward.id))).scalar_one()  # type: ignore[call-overload]
    asks = [reservations.Ask(m, reward_id, f"confirm:{m}") for m in ids]
    batches = [asks[k::8] for k in range(8)]
    # A retry of confirmations already in other batches: the same keys, decided concurrently.
    retries = [asks[k] for k in range(0, 160, 20)]
    outcomes = await asyncio.gather(*(decide(shop, b) for b in [*batches, retries]))
    by_key: dict[str, list[reservations.Outcome]] = {}
    for batch, got in zip([*batches, retries], outcomes, strict=True):
        for ask, outcome in zip(batch, got, strict=True):
            by_key.setdefault(ask.key, []).append(outcome)

    served = {k for k, o in by_key.items() if any(x.redemption is not None for x in o)}
    assert len(served) == STOCK
    # A key decided twice at once never makes two redemptions (the second may find no stock);
    # decided again afterwards, it gets the first one's redemption.
    for got in by_key.values():
        assert len({o.redemption.id for o in got if o.redemption}) <= 1
    again = await decide(shop, asks)
    for ask, outcome in zip(asks, again, strict=True):
        first = next((o.redemption.id for o in by_key[ask.key] if o.redemption), None)
        assert (outcome.redemption.id if outcome.redemption else None) == first
    assert all(by_key[f"confirm:{m}"][0].refused == reservations.NOT_ENOUGH for m in ids[150:])
    assert {o[0].refused for k, o in by_key.items() if k not in served} <= {"out_of_stock", reservations.NOT_ENOUGH}

    async with shop.db.read() as s:
        reward = await rewards.get(s, reward_id)
        assert reward is not None and (reward.stock, reward.reserved, reward.fulfilled) == (0, STOCK, 0)
        spends = dict((await s.execute(select(PointEntry.member_id, func.count()).where(  # type: ignore[call-overload]
            PointEntry.kind == points.SPEND).group_by(PointEntry.member_id))).all())
        held = (await s.execute(select(Redemption.member_id))).scalars().all()  # type: ignore[call-overload]
        ledgers = {m: await points.check(s, m) for m in ids}
    winners = {int(k.split(":")[1]) for k in served}
    assert spends == {m: 1 for m in winners}  # each winner charged once, nobody else at all
    assert sorted(held) == sorted(winners)
    for m, amount in zip(ids, amounts, strict=True):
        expected = amount - COST if m in winners else amount
        assert ledgers[m] == (expected, expected, expected)


async def test_a_rush_through_chat_tells_everyone_at_once(shop: SandboxClient) -> None:
    """Every confirmation is answered in its own request: served, gone, or short of points (the
    five who spent their points between 兑换 and 确认), and only the served are charged."""
    ids = await members_with(shop, [COST] * 65)
    async with shop.db.read() as s:
        reward_id = (await s.execute(select(Reward.id))).scalar_one()  # type: ignore[call-overload]
    who = [f"rush{i}" for i in range(len(ids))]
    await asyncio.gather(*(shop.say(w, f"兑换 {reward_id}") for w in who))
    async with shop.db.transaction() as s:
        for m in ids[60:]:
            await points.spend(s, m, COST // 2, key=f"elsewhere:{m}", reason="测试", now=shop.dispatcher.clock.now())
    answers = [a[0]["text"] for a in await asyncio.gather(*(shop.say(w, "确认") for w in who))]
    assert sum("兑换成功" in a for a in answers) == STOCK
    assert sum("被兑完了" in a for a in answers) == 60 - STOCK
    assert all("积分不够" in a for a in answers[60:])
    async with shop.db.read() as s:
        balances = [await points.balance(s, m) for m in ids]
    assert sorted(balances) == [0] * STOCK + [COST // 2] * 5 + [COST] * (60 - STOCK)
