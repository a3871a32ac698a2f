"""Points that behave like money (DESIGN §6): an append-only ledger with unique keys, lots spent
oldest first, a balance row changed in the same transaction, never negative.

A credit may be pending until a date (a purchase's return window): its lot counts in the
balance row's ``pending``, not in ``balance``, until ``release`` moves it over.

Every function runs inside the caller's transaction; a repeated ``key`` changes nothing and says
so, which is what makes a retried update (a platform retry, a double click) harmless.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, Integer, func, nulls_last, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage import points_batch, tally
from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for

EARN, GRANT, REFUND, SPEND, DEDUCT, EXPIRE = "earn", "grant", "refund", "spend", "deduct", "expire"


class PointEntry(SQLModel, table=True):
    """The points ledger: append-only. Every change of a balance is one entry with a unique key,
    so a retried credit or spend is refused instead of counted twice."""

    __tablename__ = "point_entries"
    __table_args__ = (
        Index("ix_point_entries_member", "member_id", "id"),
        Index("ix_point_entries_period", "kind", "created_at", "member_id"),  # leaderboards
    )

    id: int = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True,
    ))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    delta: int
    # earn (sign-in, tasks: what leaderboards count) | grant | refund | spend | deduct | expire
    kind: str = Field(default="earn", max_length=16, sa_column_kwargs={"server_default": "earn"})
    reason: str = Field(max_length=200)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    issuer: str | None = Field(default=None, max_length=160)
    created_at: datetime = utc_field()


class PointLot(SQLModel, table=True):
    """Points credited together; spending takes the oldest lots first, and a lot may expire."""

    __tablename__ = "point_lots"
    __table_args__ = (
        Index("ix_point_lots_spendable", "member_id", "remaining"),
        Index("ix_point_lots_expiry", "expires_at"),
    )

    id: int = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    entry_id: int = Field(sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("point_entries.id"), nullable=False,
    ))
    amount: int
    remaining: int
    expires_at: datetime | None = utc_field(default=None)
    # A pending lot (e.g. until a return window closes) is counted in ``pending``, not in the
    # balance, until the sweeper releases it at this time; None once released (or never pending).
    available_at: datetime | None = utc_field(default=None)
    created_at: datetime = utc_field()


class PointBalance(SQLModel, table=True):
    """The balance, changed in the same transaction as the entries: balance + pending equals the
    sum of the entries and of the lots' remaining points, and neither is negative (CHECKs)."""

    __tablename__ = "point_balances"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="ck_point_balances_not_negative"),
        CheckConstraint("pending >= 0", name="ck_point_balances_pending_not_negative"),
    )

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    balance: int = Field(default=0)
    pending: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # credited, not yet spendable
    lifetime: int = Field(default=0)  # all points ever earned (levels are by lifetime points)


E = table_of(PointEntry)
L = table_of(PointLot)
B = table_of(PointBalance)


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


async def pending(session: AsyncSession, member_id: int) -> int:
    value = (await session.execute(select(B.c.pending).where(B.c.member_id == member_id))).scalar_one_or_none()
    return int(value or 0)


async def _entry(session: AsyncSession, member_id: int, delta: int, *, key: str, reason: str, now: datetime,
                 issuer: str | None, kind: str) -> int | None:
    stmt = insert_for(session, E).values(member_id=member_id, delta=delta, kind=kind, key=key, reason=reason,
                                         issuer=issuer, created_at=now)
    stmt = stmt.on_conflict_do_nothing(index_elements=[E.c.key]).returning(E.c.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def credit(
    session: AsyncSession, member_id: int, amount: int, *, key: str, reason: str, now: datetime,
    expires_at: datetime | None = None, available_at: datetime | None = None, issuer: str | None = None,
    kind: str = EARN,
) -> Posted:
    """Add ``amount`` (> 0) points as a lot, unless ``key`` was used before. With
    ``available_at`` later than ``now`` the points are pending until then. Earned points
    (``kind`` earn) count toward levels and leaderboards; grants and refunds toward neither."""
    if amount <= 0:
        raise ValueError("a credit is a positive number of points")
    entry_id = await _entry(session, member_id, amount, key=key, reason=reason, now=now, issuer=issuer, kind=kind)
    if entry_id is None:
        return Posted(False, await balance(session, member_id), await lifetime(session, member_id))
    held = available_at is not None and available_at > now
    await session.execute(L.insert().values(member_id=member_id, entry_id=entry_id, amount=amount, remaining=amount,
                                            expires_at=expires_at, available_at=available_at if held else None,
                                            created_at=now))
    spendable, waiting, earned = (0 if held else amount), (amount if held else 0), (amount if kind == EARN else 0)
    stmt = insert_for(session, B).values(member_id=member_id, balance=spendable, pending=waiting, lifetime=earned)
    stmt = stmt.on_conflict_do_update(index_elements=[B.c.member_id], set_={
        "balance": B.c.balance + spendable, "pending": B.c.pending + waiting, "lifetime": B.c.lifetime + earned,
    }).returning(B.c.balance, B.c.lifetime)
    row = (await session.execute(stmt)).one()
    tally.add(session, tally.POINTS_ISSUED, kind, amount=amount)
    return Posted(True, int(row.balance), int(row.lifetime))


async def spend(
    session: AsyncSession, member_id: int, amount: int, *, key: str, reason: str, now: datetime,
    issuer: str | None = None, kind: str = SPEND,
) -> Posted:
    """Take ``amount`` (> 0) spendable points, oldest lots first (those expiring soonest first).
    Raises ``NotEnoughPoints`` if the balance is short; a repeated ``key`` changes nothing.
    ``kind`` is spend (a redemption) or deduct (an operator's correction)."""
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
    if await _entry(session, member_id, -amount, key=key, reason=reason, now=now, issuer=issuer, kind=kind) is None:
        # The same key spent concurrently by another transaction: give this one back.
        await session.execute(update(B).where(B.c.member_id == member_id).values(balance=B.c.balance + amount))
        return Posted(False, left + amount)
    lots = (await session.execute(
        select(L.c.id, L.c.remaining).where(L.c.member_id == member_id, L.c.remaining > 0, L.c.available_at.is_(None))
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
    tally.add(session, tally.POINTS_SPENT, kind, amount=amount)
    return Posted(True, left)


async def expire(session: AsyncSession, *, now: datetime, limit: int = 1000) -> int:
    """Points of lots past their expiry stop counting: one ledger entry per lot. Returns the
    number of lots expired."""
    lots = (await session.execute(
        select(L.c.id, L.c.member_id, L.c.remaining, L.c.available_at)
        .where(L.c.expires_at <= now, L.c.remaining > 0).limit(limit)
    )).all()
    for lot in lots:
        if await _entry(session, lot.member_id, -lot.remaining, key=f"expire:lot:{lot.id}", reason="积分过期",
                        now=now, issuer="system", kind=EXPIRE) is None:
            continue
        await session.execute(update(L).where(L.c.id == lot.id).values(remaining=0, available_at=None))
        column = "pending" if lot.available_at is not None else "balance"
        await session.execute(update(B).where(B.c.member_id == lot.member_id)
                              .values({column: B.c[column] - lot.remaining}))
    return len(lots)


async def release(session: AsyncSession, *, now: datetime, limit: int = 1000) -> int:
    """Pending lots whose time has come become spendable. Returns how many were released.
    The guard on ``available_at`` makes a second sweep (or a second process) a no-op."""
    lots = (await session.execute(
        select(L.c.id, L.c.member_id).where(L.c.available_at <= now).limit(limit)
    )).all()
    released = 0
    for lot in lots:
        row = (await session.execute(update(L).where(L.c.id == lot.id, L.c.available_at.is_not(None))
                                     .values(available_at=None).returning(L.c.remaining))).first()
        if row is None:
            continue
        released += 1
        await session.execute(update(B).where(B.c.member_id == lot.member_id)
                              .values(balance=B.c.balance + row.remaining, pending=B.c.pending - row.remaining))
    return released


@dataclass(frozen=True, slots=True)
class Line:
    """One credit of ``credit_many``."""

    member_id: int
    amount: int
    key: str
    reason: str
    expires_at: datetime | None = None
    available_at: datetime | None = None
    issuer: str | None = None
    kind: str = EARN


@dataclass(frozen=True, slots=True)
class Totals:
    """A member's figures after ``credit_many``: the points it credited to them (0 when every
    key was used before), and their balance, pending and lifetime points."""

    credited: int
    balance: int
    pending: int
    lifetime: int


async def credit_many(session: AsyncSession, lines: list[Line], *, now: datetime) -> dict[int, Totals]:
    """``credit`` for many lines at once, with the same rules (a used key credits nothing), in
    one statement for the whole batch on PostgreSQL and one trip on SQLite
    (``storage.points_batch``) instead of three statements per line: what keeps a rush of
    sign-ins as cheap as chat. Returns every member's totals."""
    first: dict[str, Line] = {}
    for line in lines:  # a key used twice in the batch posts once, like a used key
        if line.amount > 0:
            first.setdefault(line.key, line)
    if not first:
        return {}
    lines = list(first.values())
    held = [x.available_at is not None and x.available_at > now for x in lines]
    totals: dict[int, Totals] = {}
    for r in await points_batch.credit_all(session, lines, held, now=now, earn=EARN):
        posted = [first[key] for key in r.posted_keys]
        for x in posted:
            tally.add(session, tally.POINTS_ISSUED, x.kind, amount=x.amount)
        totals[r.member_id] = Totals(sum(x.amount for x in posted), r.balance, r.pending, r.lifetime)
    if missing := sorted({x.member_id for x in lines} - totals.keys()):  # retries: nothing new, read as is
        found = {r.member_id: r for r in (await session.execute(
            select(B.c.member_id, B.c.balance, B.c.pending, B.c.lifetime).where(B.c.member_id.in_(missing)))).all()}
        for m in missing:
            row = found.get(m)
            totals[m] = Totals(0, int(row.balance), int(row.pending), int(row.lifetime)) if row else Totals(0, 0, 0, 0)
    return totals


async def balances(session: AsyncSession, members: list[int]) -> dict[int, int]:
    """The balances of ``members`` (0 for one with none), in one statement."""
    rows = (await session.execute(select(B.c.member_id, B.c.balance).where(B.c.member_id.in_(members)))).all()
    return {m: 0 for m in members} | {r.member_id: int(r.balance) for r in rows}


async def earned_since_many(session: AsyncSession, members: list[int], since: datetime) -> dict[int, int]:
    """``earned_since`` for several members, in one statement."""
    rows = (await session.execute(select(E.c.member_id, func.sum(E.c.delta)).where(
        E.c.member_id.in_(members), E.c.kind == EARN, E.c.created_at >= since).group_by(E.c.member_id))).all()
    return {m: 0 for m in members} | {r[0]: int(r[1]) for r in rows}


async def earned_since(session: AsyncSession, member_id: int, since: datetime) -> int:
    """Points the member earned (sign-in, tasks) since ``since``: what a daily cap counts."""
    return int((await session.execute(select(func.coalesce(func.sum(E.c.delta), 0)).where(
        E.c.member_id == member_id, E.c.kind == EARN, E.c.created_at >= since))).scalar_one())


async def entry(session: AsyncSession, key: str) -> PointEntry | None:
    """The entry posted under ``key``: what a repeated key was first used for."""
    return (await session.execute(select(PointEntry).where(col(PointEntry.key) == key))).scalar_one_or_none()


async def recent(session: AsyncSession, member_id: int, limit: int = 5) -> list[PointEntry]:
    """The member's latest entries, newest first."""
    return list((await session.execute(select(PointEntry).where(col(PointEntry.member_id) == member_id)
                                        .order_by(col(PointEntry.id).desc()).limit(limit))).scalars())


async def expiring(session: AsyncSession, member_id: int, *, before: datetime) -> tuple[int, datetime | None]:
    """Points of the member that expire before ``before``, and the soonest expiry."""
    row = (await session.execute(select(func.coalesce(func.sum(L.c.remaining), 0), func.min(L.c.expires_at)).where(
        L.c.member_id == member_id, L.c.remaining > 0, L.c.expires_at < before))).one()
    return int(row[0]), row[1]


async def check(session: AsyncSession, member_id: int) -> tuple[int, int, int]:
    """(balance + pending, sum of entries, sum of lots' remaining): equal in a sound ledger."""
    entries = (await session.execute(select(func.coalesce(func.sum(E.c.delta), 0))
                                     .where(E.c.member_id == member_id))).scalar_one()
    lots = (await session.execute(select(func.coalesce(func.sum(L.c.remaining), 0))
                                  .where(L.c.member_id == member_id))).scalar_one()
    return await balance(session, member_id) + await pending(session, member_id), int(entries), int(lots)
