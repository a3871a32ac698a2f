"""Redemptions of a whole batch at once: a rush of members on one reward costs a few statements
per reward, not a dozen per member (issue 20), with ``rewards.redeem``'s rules: never oversold,
never charged twice, nobody charged who got nothing, a repeated key answered as the first time.

Each reward's units are claimed with one locked read and one update for the batch (the row is
locked from there to the commit only: the claim comes last in the batch's transaction), the
winners' points taken with one conditional update per reward, and their ledger entries, lots
and redemptions written with one multi-row statement each.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, nulls_last, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import points, rewards, tally
from storage.points import SPEND
from storage.rewards import AWAITING_APPROVAL, CANCELLED, RESERVED, Redemption, Reward, Unavailable
from storage.sql import table_of

R, X = rewards.R, rewards.X
E, L, B = table_of(points.PointEntry), table_of(points.PointLot), table_of(points.PointBalance)
NOT_ENOUGH = "not_enough"


@dataclass(frozen=True, slots=True)
class Ask:
    """One member's confirmed redemption: ``level`` is their tier, ``levels`` the tier names."""

    member_id: int
    reward_id: int
    key: str
    level: str | None = None
    levels: tuple[str, ...] = ()
    via: str | None = None  # chat | page (the member center): where it was redeemed


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an ``Ask``: the redemption, or why not (a reason of ``Unavailable``, or
    ``not_enough``); ``balance`` is the member's spendable points after it."""

    redemption: Redemption | None
    refused: str | None
    balance: int
    reward: Reward | None


async def redeem_many(session: AsyncSession, asks: Sequence[Ask], *, now: datetime,
                      balances: dict[int, int] | None = None) -> list[Outcome]:
    """``rewards.redeem`` for every ask (one member once per batch), in a few statements per
    reward. A code-pool reward is redeemed one ask at a time (each picks a code). ``balances``:
    the askers' balances as just read in this transaction (``standing``), if the caller has them."""
    done = {r.key: r for r in (await session.execute(
        select(Redemption).where(col(Redemption.key).in_([a.key for a in asks])))).scalars()}
    found = {r.id: r for r in (await session.execute(
        select(Reward).where(col(Reward.id).in_({a.reward_id for a in asks}))
        .execution_options(populate_existing=True))).scalars()}
    refused: dict[int, str] = {}
    open_asks: dict[int, list[int]] = {}  # reward → indexes of asks still in the running
    for i, ask in enumerate(asks):
        reward = found.get(ask.reward_id)
        if ask.key in done:
            continue
        reason = "unknown" if reward is None else rewards.broken_rule(
            reward, now=now, level=ask.level, levels=ask.levels)
        if reason is not None:
            refused[i] = reason
        else:
            open_asks.setdefault(ask.reward_id, []).append(i)
    await _limits(session, asks, found, open_asks, refused)
    held = balances if balances is not None else {m: b for m, (b, _) in (
        await standing(session, [a.member_id for a in asks])).items()}
    after = dict(held)  # the balances as the answers tell them, changed by each charge below
    made: dict[int, Redemption] = {}
    for reward_id in sorted(open_asks):  # rewards in one order: two batches lock them alike
        reward, ids = found[reward_id], open_asks[reward_id]
        if reward.fulfilment == "code":
            for i in ids:
                await _one_by_one(session, asks[i], reward, now=now, made=made, refused=refused, index=i)
                after[asks[i].member_id] = await points.balance(session, asks[i].member_id)
            continue
        able = [i for i in ids if held.get(asks[i].member_id, 0) >= reward.cost]
        refused.update({i: NOT_ENOUGH for i in ids if i not in able})
        won = await _claim(session, reward, len(able))
        refused.update({i: "out_of_stock" for i in able[won:]})
        made.update(await _reserve(session, reward, [asks[i] for i in able[:won]], able[:won], now=now,
                                   refused=refused, after=after))
    return [Outcome(done.get(a.key) or made.get(i), refused.get(i) if a.key not in done else None,
                    after.get(a.member_id, 0), found.get(a.reward_id)) for i, a in enumerate(asks)]


async def standing(session: AsyncSession, members: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(spendable balance, points ever earned: the level) of each of ``members`` that has a
    ledger, in one read."""
    rows = await session.execute(select(B.c.member_id, B.c.balance, B.c.lifetime)
                                 .where(B.c.member_id.in_(set(members))))
    return {r.member_id: (int(r.balance), int(r.lifetime)) for r in rows}


async def _limits(session: AsyncSession, asks: Sequence[Ask], found: dict[int, Reward],
                  open_asks: dict[int, list[int]], refused: dict[int, str]) -> None:
    """Refuse the asks over their reward's per-member limit (one count for the batch)."""
    limited = {rid for rid in open_asks if found[rid].per_member_limit}
    if not limited:
        return
    members = {asks[i].member_id for rid in limited for i in open_asks[rid]}
    counts = {(r.member_id, r.reward_id): int(r.n) for r in await session.execute(
        select(X.c.member_id, X.c.reward_id, func.count().label("n"))
        .where(X.c.reward_id.in_(limited), X.c.member_id.in_(members), X.c.status != CANCELLED)
        .group_by(X.c.member_id, X.c.reward_id))}
    for rid in limited:
        kept = []
        for i in open_asks[rid]:
            pair = (asks[i].member_id, rid)
            if counts.get(pair, 0) >= found[rid].per_member_limit:
                refused[i] = "limit"
            else:
                counts[pair] = counts.get(pair, 0) + 1
                kept.append(i)
        open_asks[rid] = kept


async def _claim(session: AsyncSession, reward: Reward, wanted: int) -> int:
    """Take up to ``wanted`` units of ``reward`` (as this batch read it); how many were taken.
    The locked read and the update are the guard: another batch claiming the same reward waits
    for this one's commit and then sees its stock (on SQLite the one writer orders them)."""
    # Sold out when this batch read it: no unit to lock. Claims only lower the stock; a restock
    # committed since then turns away this batch as if it had come a moment earlier. In a rush
    # most batches come after the last unit: a statement fewer for each (bench/README.md).
    if not wanted or reward.stock <= 0:
        return 0
    reward_id = reward.id
    stock = (await session.execute(select(R.c.stock).where(R.c.id == reward_id, R.c.active.is_(True))
                                   .with_for_update())).scalar_one_or_none()
    take = min(wanted, int(stock or 0))
    if take:
        await session.execute(update(R).where(R.c.id == reward_id)
                              .values(stock=R.c.stock - take, reserved=R.c.reserved + take))
    return take


async def _reserve(session: AsyncSession, reward: Reward, asks: list[Ask], indexes: list[int], *,
                   now: datetime, refused: dict[int, str], after: dict[int, int]) -> dict[int, Redemption]:
    """Charge the winners of ``reward`` and write their redemptions; a winner whose points went
    meanwhile (another process) gives the unit back and is told so. ``after`` gets the
    winners' balances."""
    if not asks:
        return {}
    charged = {r.member_id: int(r.balance) for r in await session.execute(
        update(B).where(B.c.member_id.in_([a.member_id for a in asks]), B.c.balance >= reward.cost)
        .values(balance=B.c.balance - reward.cost).returning(B.c.member_id, B.c.balance))}
    after.update(charged)
    short = [i for i, a in zip(indexes, asks, strict=True) if a.member_id not in charged]
    if short:
        refused.update({i: NOT_ENOUGH for i in short})
        await session.execute(update(R).where(R.c.id == reward.id)
                              .values(stock=R.c.stock + len(short), reserved=R.c.reserved - len(short)))
    pairs = [(i, a) for i, a in zip(indexes, asks, strict=True) if a.member_id in charged]
    if not pairs:
        return {}
    entries = (await session.execute(E.insert().returning(E.c.key), [
        {"member_id": a.member_id, "delta": -reward.cost, "kind": SPEND, "key": f"redeem:{a.key}",
         "reason": f"兑换 {reward.name}", "issuer": None, "created_at": now} for _, a in pairs])).scalars().all()
    if len(entries) != len(pairs):  # cannot be: every key was checked above in this transaction
        raise RuntimeError("redemption ledger entries were not all written")
    await _take_lots(session, {a.member_id: reward.cost for _, a in pairs})
    status = AWAITING_APPROVAL if reward.approval else RESERVED
    rows = (await session.execute(X.insert().returning(X.c.id, X.c.key), [
        {"member_id": a.member_id, "reward_id": reward.id, "cost": reward.cost, "status": status, "key": a.key,
         "code": None, "created_at": now, "settled_at": None, "via": a.via} for _, a in pairs])).all()
    ids = {r.key: r.id for r in rows}
    for _ in pairs:
        tally.add(session, tally.POINTS_SPENT, SPEND, amount=reward.cost)
    return {i: Redemption(id=ids[a.key], member_id=a.member_id, reward_id=reward.id, cost=reward.cost, status=status,
                          key=a.key, code=None, created_at=now, via=a.via) for i, a in pairs}


async def _take_lots(session: AsyncSession, owed: dict[int, int]) -> None:
    """Spend each member's points from their lots, oldest (soonest expiring) first, as
    ``points.spend`` does: one read and one multi-row update for the batch."""
    lots = (await session.execute(
        select(L.c.id, L.c.member_id, L.c.remaining)
        .where(L.c.member_id.in_(list(owed)), L.c.remaining > 0, L.c.available_at.is_(None))
        .order_by(L.c.member_id, nulls_last(L.c.expires_at.asc()), L.c.id))).all()
    left, uses = dict(owed), []
    for lot in lots:
        use = min(left[lot.member_id], lot.remaining)
        if use:
            uses.append({"lot": lot.id, "use": use})
            left[lot.member_id] -= use
    if any(left.values()) or not uses:  # the balance said yes but the lots disagree: refuse rather than go wrong
        raise RuntimeError(f"ledgers of members {[m for m, n in left.items() if n]}: balance and lots disagree")
    await session.execute(update(L).where(L.c.id == bindparam("lot"))
                          .values(remaining=L.c.remaining - bindparam("use")), uses)


async def _one_by_one(session: AsyncSession, ask: Ask, reward: Reward, *, now: datetime,
                      made: dict[int, Redemption], refused: dict[int, str], index: int) -> None:
    try:
        made[index] = await rewards.redeem(session, ask.member_id, reward.id, key=ask.key, now=now,
                                           level=ask.level, levels=ask.levels, via=ask.via)
    except points.NotEnoughPoints:
        refused[index] = NOT_ENOUGH
    except Unavailable as exc:
        refused[index] = exc.reason
