"""The points catalog and redemptions: stock never below zero and never oversold, points and one
unit reserved together, fulfilled or cancelled (with a refund) later (DESIGN §6)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    UniqueConstraint,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage import points
from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class Reward(SQLModel, table=True):
    """A reward in the points catalog. Its units are always stock + reserved + fulfilled."""

    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_rewards_stock_not_negative"),
        CheckConstraint("reserved >= 0", name="ck_rewards_reserved_not_negative"),
    )

    id: int = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    cost: int
    stock: int  # units left to redeem
    reserved: int = Field(default=0)  # redeemed, waiting to be handed over
    fulfilled: int = Field(default=0)
    per_member_limit: int = Field(default=0)  # 0: no limit
    active: bool = Field(default=True)
    min_level: str | None = Field(default=None, max_length=16)  # a tier name from [levels]
    starts_at: datetime | None = utc_field(default=None)  # redeemable from / until (None: always)
    ends_at: datetime | None = utc_field(default=None)
    # A redemption waits for an operator's approval before it counts as reserved (high value).
    approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # manual: an operator hands it over | code: a code from the pool, handed over at once
    fulfilment: str = Field(default="manual", max_length=8, sa_column_kwargs={"server_default": "manual"})
    created_at: datetime = utc_field()
    # What the member center's mall shows, set by operators in the console: a few lines, and
    # the file name of a picture under [member_center] upload_dir (made by the server, never a path).
    description: str | None = Field(default=None, max_length=500)
    picture: str | None = Field(default=None, max_length=64)


class Redemption(SQLModel, table=True):
    """A member's redemption: points and one unit reserved together, then fulfilled or cancelled."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_member_reward", "member_id", "reward_id"),
        Index("ix_redemptions_created", "created_at"),
    )

    id: int = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    reward_id: int = Field(sa_column=Column(Integer, ForeignKey("rewards.id"), nullable=False))
    cost: int
    # awaiting_approval | reserved | fulfilled | cancelled: points and the unit are held from the start
    status: str = Field(default="reserved", max_length=20)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    code: str | None = Field(default=None, max_length=128)  # a code-pool reward's code
    created_at: datetime = utc_field()
    settled_at: datetime | None = utc_field(default=None)
    via: str | None = Field(default=None, max_length=8)  # chat | page (the member center); None before 0021


class RewardCode(SQLModel, table=True):
    """One code of a virtual reward's pool (a coupon, a member-card code): given out once."""

    __tablename__ = "reward_codes"
    __table_args__ = (
        UniqueConstraint("reward_id", "code", name="uq_reward_codes_reward_code"),
        Index("ix_reward_codes_free", "reward_id", "redemption_id"),
    )

    id: int = Field(default=None, primary_key=True)
    reward_id: int = Field(sa_column=Column(Integer, ForeignKey("rewards.id", ondelete="CASCADE"), nullable=False))
    code: str = Field(max_length=128)
    redemption_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("redemptions.id"), nullable=True, unique=True,
    ))


R = table_of(Reward)
X = table_of(Redemption)
C = table_of(RewardCode)
AWAITING_APPROVAL, RESERVED, FULFILLED, CANCELLED = "awaiting_approval", "reserved", "fulfilled", "cancelled"


class Unavailable(Exception):
    """The reward cannot be redeemed: ``reason`` is one of out_of_stock, inactive, unknown,
    limit, level (below its minimum level), not_yet, ended (outside its window)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RewardSpec:
    name: str
    cost: int
    stock: int
    per_member_limit: int = 0
    min_level: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    approval: bool = False
    codes: tuple[str, ...] = field(default=())

    def rules(self) -> dict[str, object]:
        return {"cost": self.cost, "per_member_limit": self.per_member_limit, "min_level": self.min_level,
                "starts_at": self.starts_at, "ends_at": self.ends_at, "approval": self.approval,
                "fulfilment": "code" if self.codes else "manual"}


async def ensure(session: AsyncSession, specs: Sequence[RewardSpec], *, now: datetime) -> None:
    """Bring the catalog in line with the config: a reward not there yet (by name) is added
    with its stock; one already there takes the config's rules (cost, limits, level, window,
    approval) but keeps its stock, which operators manage from then on. New codes join the pool."""
    existing = dict((await session.execute(select(R.c.name, R.c.id))).all())
    for spec in specs:
        if spec.name in existing:
            reward_id = existing[spec.name]
            await session.execute(update(R).where(R.c.id == reward_id).values(**spec.rules()))
        else:
            reward_id = (await session.execute(R.insert().values(
                name=spec.name, stock=spec.stock, reserved=0, fulfilled=0, active=True, created_at=now, **spec.rules(),
            ).returning(R.c.id))).scalar_one()
        await add_codes(session, reward_id, spec.codes)


async def add(session: AsyncSession, spec: RewardSpec, *, now: datetime) -> int:
    """Put a reward in the catalog (a vote's winner, an operator's new reward): a new one with
    its stock, or one known by name made active again with ``spec.stock`` more units."""
    row = (await session.execute(update(R).where(R.c.name == spec.name).values(
        active=True, stock=R.c.stock + spec.stock).returning(R.c.id))).first()
    if row is not None:
        return int(row.id)
    return int((await session.execute(R.insert().values(
        name=spec.name, stock=spec.stock, reserved=0, fulfilled=0, active=True, created_at=now, **spec.rules(),
    ).returning(R.c.id))).scalar_one())


async def add_codes(session: AsyncSession, reward_id: int, codes: Sequence[str]) -> int:
    """Add codes to a reward's pool (those already there are skipped); returns how many were new."""
    if not codes:
        return 0
    stmt = insert_for(session, C).on_conflict_do_nothing(index_elements=[C.c.reward_id, C.c.code])
    before = await free_codes(session, reward_id)
    await session.execute(stmt, [{"reward_id": reward_id, "code": code} for code in codes])
    return await free_codes(session, reward_id) - before


async def free_codes(session: AsyncSession, reward_id: int) -> int:
    return int((await session.execute(select(func.count()).select_from(C).where(
        C.c.reward_id == reward_id, C.c.redemption_id.is_(None)))).scalar_one())


def _open_at(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (col(Reward.active).is_(True), or_(col(Reward.starts_at).is_(None), col(Reward.starts_at) <= now),
            or_(col(Reward.ends_at).is_(None), col(Reward.ends_at) > now))


async def catalog(session: AsyncSession, *, now: datetime) -> list[Reward]:
    """The rewards open for redemption at ``now`` (active, inside their window)."""
    return list((await session.execute(select(Reward).where(*_open_at(now)).order_by(col(Reward.id)))).scalars())


async def get(session: AsyncSession, reward_id: int) -> Reward | None:
    return (await session.execute(
        select(Reward).where(col(Reward.id) == reward_id).execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def redeem(session: AsyncSession, member_id: int, reward_id: int, *, key: str, now: datetime,
                 level: str | None = None, levels: Sequence[str] = (), via: str | None = None) -> Redemption:
    """Reserve one unit and its points together, or neither: raises ``Unavailable`` or
    ``points.NotEnoughPoints`` and leaves nothing behind. A repeated ``key`` returns the first.

    ``level`` is the member's tier and ``levels`` the tier names in order, for rewards with a
    minimum level. A code-pool reward is fulfilled at once with a code; one that needs approval
    waits as ``awaiting_approval`` with its points and unit held."""
    done = (await session.execute(select(Redemption).where(col(Redemption.key) == key))).scalar_one_or_none()
    if done is not None:
        return done
    reward = await get(session, reward_id)
    if reward is None:
        raise Unavailable("unknown")
    reason = broken_rule(reward, now=now, level=level, levels=levels)
    if reason is not None:
        raise Unavailable(reason)
    if await _limit_used(session, member_id, reward):
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
        status = AWAITING_APPROVAL if reward.approval else RESERVED
        result = await session.execute(X.insert().values(
            member_id=member_id, reward_id=reward_id, cost=reward.cost, status=status, key=key, created_at=now, via=via,
        ).returning(X.c.id))
        redemption_id = int(result.scalar_one())
        if reward.fulfilment == "code":
            await _hand_out_code(session, reward_id, redemption_id, now=now)
    return (await session.execute(select(Redemption).where(col(Redemption.id) == redemption_id))).scalar_one()


async def refusal(session: AsyncSession, member_id: int, reward: Reward, *, now: datetime,
                  level: str | None = None, levels: Sequence[str] = ()) -> str | None:
    """Why ``member_id`` cannot redeem ``reward`` now (a reason of ``Unavailable``), or None:
    what is known before the member is asked to confirm (stock and code pool as read now; the
    redemption itself decides again, under its lock)."""
    reason = broken_rule(reward, now=now, level=level, levels=levels)
    if reason is None and await _limit_used(session, member_id, reward):
        reason = "limit"
    if reason is None and (reward.stock <= 0 or (reward.fulfilment == "code"
                                                 and not await free_codes(session, reward.id))):
        reason = "out_of_stock"
    return reason


def broken_rule(reward: Reward, *, now: datetime, level: str | None, levels: Sequence[str]) -> str | None:
    """The rule of ``reward`` a member of tier ``level`` breaks now (a reason of ``Unavailable``), or None."""
    if not reward.active:
        return "inactive"
    if reward.starts_at is not None and now < reward.starts_at:
        return "not_yet"
    if reward.ends_at is not None and now >= reward.ends_at:
        return "ended"
    if reward.min_level and (reward.min_level not in levels or level not in levels
                             or levels.index(level) < levels.index(reward.min_level)):
        return "level"
    return None


async def _limit_used(session: AsyncSession, member_id: int, reward: Reward) -> bool:
    if not reward.per_member_limit:
        return False
    mine = (await session.execute(select(func.count()).select_from(X).where(
        X.c.member_id == member_id, X.c.reward_id == reward.id, X.c.status != CANCELLED))).scalar_one()
    return bool(mine >= reward.per_member_limit)


async def _hand_out_code(session: AsyncSession, reward_id: int, redemption_id: int, *, now: datetime) -> None:
    # The reward's row is locked by the stock update above, so two redeemers cannot pick the
    # same free code; an empty pool refuses like an empty stock (the savepoint undoes all).
    code = (await session.execute(select(C.c.id, C.c.code)
                                  .where(C.c.reward_id == reward_id, C.c.redemption_id.is_(None))
                                  .order_by(C.c.id).limit(1))).first()
    if code is None:
        raise Unavailable("out_of_stock")
    await session.execute(update(C).where(C.c.id == code.id).values(redemption_id=redemption_id))
    await session.execute(update(X).where(X.c.id == redemption_id).values(code=code.code))
    await fulfil(session, redemption_id, now=now)


async def approve(session: AsyncSession, redemption_id: int) -> bool:
    """An operator lets a redemption that waits for approval go ahead (to be handed over);
    False if it is not waiting."""
    result = await session.execute(update(X).where(X.c.id == redemption_id, X.c.status == AWAITING_APPROVAL)
                                   .values(status=RESERVED))
    return rowcount(result) == 1


async def fulfil(session: AsyncSession, redemption_id: int, *, now: datetime) -> bool:
    """The reward was handed over; False if the redemption is not reserved."""
    row = (await session.execute(
        update(X).where(X.c.id == redemption_id, X.c.status == RESERVED).values(status=FULFILLED, settled_at=now)
        .returning(X.c.reward_id)
    )).first()
    if row is None:
        return False
    await session.execute(update(R).where(R.c.id == row.reward_id)
                          .values(reserved=R.c.reserved - 1, fulfilled=R.c.fulfilled + 1))
    return True


async def cancel(session: AsyncSession, redemption_id: int, *, now: datetime) -> bool:
    """Cancel (or refuse to approve) a redemption not handed over yet: the unit goes back to
    stock and the points are refunded (a new ledger entry, never an edit). False if it was
    handed over or cancelled already."""
    row = (await session.execute(
        update(X).where(X.c.id == redemption_id, X.c.status.in_((RESERVED, AWAITING_APPROVAL)))
        .values(status=CANCELLED, settled_at=now)
        .returning(X.c.reward_id, X.c.member_id, X.c.cost)
    )).first()
    if row is None:
        return False
    await session.execute(update(R).where(R.c.id == row.reward_id)
                          .values(reserved=R.c.reserved - 1, stock=R.c.stock + 1))
    await points.credit(session, row.member_id, row.cost, key=f"refund:{redemption_id}", reason="兑换取消退回",
                        now=now, kind=points.REFUND)
    return True


async def restock(session: AsyncSession, reward_id: int, change: int) -> bool:
    """Add (or, negative, take away) units of stock; False if that would go below zero."""
    done = await session.execute(update(R).where(R.c.id == reward_id, R.c.stock + change >= 0)
                                 .values(stock=R.c.stock + change))
    return rowcount(done) == 1


async def disable(session: AsyncSession, reward_id: int) -> None:
    """Take the reward off the catalog; redemptions made stay as they are."""
    await session.execute(update(R).where(R.c.id == reward_id).values(active=False))


async def listed(session: AsyncSession, *, now: datetime) -> list[Reward]:
    """The rewards a member center's mall shows at ``now``: active, not past their window (one
    that opens later is shown with its date, so members can save up for it)."""
    return list((await session.execute(
        select(Reward)
        .where(col(Reward.active).is_(True), or_(col(Reward.ends_at).is_(None), col(Reward.ends_at) > now))
        .order_by(col(Reward.id)))).scalars())


async def describe(session: AsyncSession, reward_id: int, *, description: str | None, picture: str | None) -> bool:
    """Set what the mall shows of a reward (its rules and stock stay as they are); False if unknown."""
    done = await session.execute(update(R).where(R.c.id == reward_id).values(description=description, picture=picture))
    return rowcount(done) == 1


async def of_member(session: AsyncSession, member_id: int, *, limit: int = 50) -> list[tuple[Redemption, str]]:
    """The member's redemptions, newest first, each with its reward's name."""
    rows = (await session.execute(
        select(Redemption, col(Reward.name)).join(Reward, col(Reward.id) == col(Redemption.reward_id))
        .where(col(Redemption.member_id) == member_id).order_by(col(Redemption.id).desc()).limit(limit))).all()
    return [(row[0], row[1]) for row in rows]


async def by_key(session: AsyncSession, key: str) -> Redemption | None:
    """The redemption made under ``key`` (what a repeated confirmation made the first time)."""
    return (await session.execute(select(Redemption).where(col(Redemption.key) == key))).scalar_one_or_none()
