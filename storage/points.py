"""Points that behave like money (DESIGN §6): an append-only ledger with unique keys, lots spent
oldest first, a balance row changed in the same transaction, never negative.

Every function runs inside the caller's transaction; a repeated ``key`` changes nothing and says
so, which is what makes a retried update (a platform retry, a double click) harmless.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, nulls_last, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import PointBalance, PointEntry, PointLot
from storage.upsert import insert_for

E = PointEntry.__table__
L = PointLot.__table__
B = PointBalance.__table__


class NotEnoughPoints(Exception):
    """A spend larger than the balance: nothing was taken."""


@dataclass(frozen=True, slots=True)
class Posted:
    done: bool  # False: the key was used before, nothing changed
    balance: int
    lifetime: int = 0  # points ever earned, after this entry (credits only)


async def balance(session: AsyncSession, member_id: int) -> int:
    value = (await session.execute(select(B.c.balance).where(B.c.member_id == member_id))).scalar_one_or_none()
    return int(value or 0)


async def lifetime(session: AsyncSession, member_id: int) -> int:
    value = (await session.execute(select(B.c.lifetime).where(B.c.member_id == member_id))).scalar_one_or_none()
    return int(value or 0)


async def _entry(session: AsyncSession, member_id: int, delta: int, *, key: str, reason: str, now: datetime,
                 issuer: str | None) -> int | None:
    stmt = insert_for(session, E).values(member_id=member_id, delta=delta, key=key, reason=reason, issuer=issuer,
                                         created_at=now).on_conflict_do_nothing(index_elements=[E.c.key]).returning(E.c.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def credit(
    session: AsyncSession, member_id: int, amount: int, *, key: str, reason: str, now: datetime,
    expires_at: datetime | None = None, issuer: str | None = None,
) -> Posted:
    """Add ``amount`` (> 0) points as a lot, unless ``key`` was used before."""
    if amount <= 0:
        raise ValueError("a credit is a positive number of points")
    entry_id = await _entry(session, member_id, amount, key=key, reason=reason, now=now, issuer=issuer)
    if entry_id is None:
        return Posted(False, await balance(session, member_id), await lifetime(session, member_id))
    await session.execute(L.insert().values(member_id=member_id, entry_id=entry_id, amount=amount, remaining=amount,
                                            expires_at=expires_at, created_at=now))
    stmt = insert_for(session, B).values(member_id=member_id, balance=amount, lifetime=amount)
    stmt = stmt.on_conflict_do_update(index_elements=[B.c.member_id], set_={
        "balance": B.c.balance + amount, "lifetime": B.c.lifetime + amount,
    }).returning(B.c.balance, B.c.lifetime)
    row = (await session.execute(stmt)).one()
    return Posted(True, int(row.balance), int(row.lifetime))


async def spend(
    session: AsyncSession, member_id: int, amount: int, *, key: str, reason: str, now: datetime,
    issuer: str | None = None,
) -> Posted:
    """Take ``amount`` (> 0) points, oldest lots first (those expiring soonest first). Raises
    ``NotEnoughPoints`` if the balance is short; a repeated ``key`` changes nothing."""
    if amount <= 0:
        raise ValueError("a spend is a positive number of points")
    if (await session.execute(select(E.c.id).where(E.c.key == key))).first() is not None:
        return Posted(False, await balance(session, member_id))  # a retry of a spend already made
    # The conditional update takes the row lock and is the guard: concurrent spends serialize
    # here and the second sees the first's balance.
    taken = await session.execute(
        update(B).where(B.c.member_id == member_id, B.c.balance >= amount).values(balance=B.c.balance - amount)
        .returning(B.c.balance)
    )
    left = taken.scalar_one_or_none()
    if left is None:
        raise NotEnoughPoints(f"member {member_id} has fewer than {amount} points")
    if await _entry(session, member_id, -amount, key=key, reason=reason, now=now, issuer=issuer) is None:
        # The same key spent concurrently by another transaction: give this one back.
        await session.execute(update(B).where(B.c.member_id == member_id).values(balance=B.c.balance + amount))
        return Posted(False, left + amount)
    lots = (await session.execute(
        select(L.c.id, L.c.remaining).where(L.c.member_id == member_id, L.c.remaining > 0)
        .order_by(nulls_last(L.c.expires_at.asc()), L.c.id)
    )).all()
    owed = amount
    for lot in lots:
        if owed == 0:
            break
        use = min(owed, lot.remaining)
        await session.execute(update(L).where(L.c.id == lot.id).values(remaining=L.c.remaining - use))
        owed -= use
    if owed:  # the balance said yes but the lots disagree: refuse rather than go wrong
        raise RuntimeError(f"ledger of member {member_id}: balance and lots disagree")
    return Posted(True, left)


async def expire(session: AsyncSession, *, now: datetime, limit: int = 1000) -> int:
    """Points of lots past their expiry stop counting: one ledger entry per lot. Returns the
    number of lots expired."""
    lots = (await session.execute(
        select(L.c.id, L.c.member_id, L.c.remaining).where(L.c.expires_at <= now, L.c.remaining > 0).limit(limit)
    )).all()
    for lot in lots:
        if await _entry(session, lot.member_id, -lot.remaining, key=f"expire:lot:{lot.id}", reason="积分过期",
                        now=now, issuer="system") is None:
            continue
        await session.execute(update(L).where(L.c.id == lot.id).values(remaining=0))
        await session.execute(update(B).where(B.c.member_id == lot.member_id).values(balance=B.c.balance - lot.remaining))
    return len(lots)


async def check(session: AsyncSession, member_id: int) -> tuple[int, int, int]:
    """(balance, sum of entries, sum of lots' remaining): equal in a sound ledger."""
    entries = (await session.execute(select(func.coalesce(func.sum(E.c.delta), 0)).where(E.c.member_id == member_id))).scalar_one()
    lots = (await session.execute(select(func.coalesce(func.sum(L.c.remaining), 0)).where(L.c.member_id == member_id))).scalar_one()
    return await balance(session, member_id), int(entries), int(lots)
