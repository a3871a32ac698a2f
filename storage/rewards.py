"""The points catalog and redemptions: stock never below zero and never oversold, points and one
unit reserved together, fulfilled or cancelled (with a refund) later (DESIGN §6)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import points
from storage.models import Redemption, Reward

R = Reward.__table__
X = Redemption.__table__


class Unavailable(Exception):
    """The reward cannot be redeemed: ``reason`` is one of out_of_stock, inactive, unknown, limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RewardSpec:
    name: str
    cost: int
    stock: int
    per_member_limit: int = 0


async def ensure(session: AsyncSession, specs: list[RewardSpec], *, now: datetime) -> None:
    """Add the rewards of the config that the catalog does not have yet (by name). Rewards
    already there keep their stock: from then on operators manage it."""
    existing = set((await session.execute(select(R.c.name))).scalars())
    rows = [{"name": s.name, "cost": s.cost, "stock": s.stock, "reserved": 0, "fulfilled": 0,
             "per_member_limit": s.per_member_limit, "active": True, "created_at": now}
            for s in specs if s.name not in existing]
    if rows:
        await session.execute(R.insert(), rows)


async def catalog(session: AsyncSession) -> list[Reward]:
    return list((await session.execute(select(Reward).where(Reward.active.is_(True)).order_by(Reward.id))).scalars())


async def get(session: AsyncSession, reward_id: int) -> Reward | None:
    return (await session.execute(
        select(Reward).where(Reward.id == reward_id).execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def redeem(session: AsyncSession, member_id: int, reward_id: int, *, key: str, now: datetime) -> Redemption:
    """Reserve one unit and its points together, or neither: raises ``Unavailable`` or
    ``points.NotEnoughPoints`` and leaves nothing behind. A repeated ``key`` returns the first."""
    done = (await session.execute(select(Redemption).where(Redemption.key == key))).scalar_one_or_none()
    if done is not None:
        return done
    reward = await get(session, reward_id)
    if reward is None:
        raise Unavailable("unknown")
    if not reward.active:
        raise Unavailable("inactive")
    if reward.per_member_limit:
        mine = (await session.execute(select(func.count()).select_from(X).where(
            X.c.member_id == member_id, X.c.reward_id == reward_id, X.c.status != "cancelled"))).scalar_one()
        if mine >= reward.per_member_limit:
            raise Unavailable("limit")
    async with session.begin_nested():  # both, or on any refusal neither
        # The conditional update is the guard: concurrent redeemers of the last unit serialize
        # on the reward's row and only as many as there are units get one.
        taken = await session.execute(
            update(R).where(R.c.id == reward_id, R.c.stock > 0, R.c.active.is_(True))
            .values(stock=R.c.stock - 1, reserved=R.c.reserved + 1).returning(R.c.id)
        )
        if taken.first() is None:
            raise Unavailable("out_of_stock")
        await points.spend(session, member_id, reward.cost, key=f"redeem:{key}", reason=f"兑换 {reward.name}", now=now)
        result = await session.execute(X.insert().values(
            member_id=member_id, reward_id=reward_id, cost=reward.cost, status="reserved", key=key, created_at=now,
        ).returning(X.c.id))
        redemption_id = int(result.scalar_one())
    return (await session.execute(select(Redemption).where(Redemption.id == redemption_id))).scalar_one()


async def fulfil(session: AsyncSession, redemption_id: int, *, now: datetime) -> bool:
    """The reward was handed over; False if the redemption is not reserved."""
    row = (await session.execute(
        update(X).where(X.c.id == redemption_id, X.c.status == "reserved").values(status="fulfilled", settled_at=now)
        .returning(X.c.reward_id)
    )).first()
    if row is None:
        return False
    await session.execute(update(R).where(R.c.id == row.reward_id).values(reserved=R.c.reserved - 1, fulfilled=R.c.fulfilled + 1))
    return True


async def cancel(session: AsyncSession, redemption_id: int, *, now: datetime) -> bool:
    """Cancel a reserved redemption: the unit goes back to stock and the points are refunded
    (a new ledger entry, never an edit). False if it is not reserved."""
    row = (await session.execute(
        update(X).where(X.c.id == redemption_id, X.c.status == "reserved").values(status="cancelled", settled_at=now)
        .returning(X.c.reward_id, X.c.member_id, X.c.cost)
    )).first()
    if row is None:
        return False
    await session.execute(update(R).where(R.c.id == row.reward_id).values(reserved=R.c.reserved - 1, stock=R.c.stock + 1))
    await points.credit(session, row.member_id, row.cost, key=f"refund:{redemption_id}", reason="兑换取消退回", now=now)
    return True
