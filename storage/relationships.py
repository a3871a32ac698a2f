"""Staff relationships (跟进人): which staff member has which customer as a contact, since when,
by which channel code, and whether and how it ended.

A WeCom customer is usually the contact of several staff at once. Deleting one of those
contacts, or handing it over to a colleague (a transfer), does not lose the customer for the
brand: a customer is lost only when their last relationship ends by a real deletion, by the
staff member or by the customer (``still_a_customer``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for

# How a relationship ended: the staff member deleted the customer (del_external_contact), the
# customer deleted the staff member (del_follow_user), or a handover moved the customer to a
# colleague (Source = DELETE_BY_TRANSFER), which is not a loss.
BY_STAFF = "staff"
BY_CUSTOMER = "customer"
BY_TRANSFER = "transfer"
ENDINGS = (BY_STAFF, BY_CUSTOMER, BY_TRANSFER)


class StaffRelationship(SQLModel, table=True):
    """One (staff member, customer) contact: added when, by which channel code, the staff's remark,
    and when and how it ended (None while it lasts)."""

    __tablename__ = "staff_relationships"
    __table_args__ = (Index("ix_staff_relationships_staff", "staff"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    staff: str = Field(max_length=128, primary_key=True)  # the staff member's WeCom userid
    added_at: datetime = utc_field()
    channel_code: str | None = Field(default=None, max_length=64)  # WeCom's State (渠道活码)
    remark: str | None = Field(default=None, max_length=128)
    ended_at: datetime | None = utc_field(default=None)
    ended_by: str | None = Field(default=None, max_length=16)  # staff | customer | transfer


R = table_of(StaffRelationship)


@dataclass(frozen=True, slots=True)
class Seen:
    """A relationship as WeCom lists it (``batch/get_by_user``'s ``follow_info``)."""

    member_id: int
    staff: str
    added_at: datetime
    channel_code: str | None
    remark: str | None


async def begin(session: AsyncSession, member_id: int, staff: str, *, at: datetime,
                channel_code: str | None) -> None:
    """A staff member added the customer (again): the relationship lasts from ``at``."""
    stmt = insert_for(session, R).values(member_id=member_id, staff=staff, added_at=at, channel_code=channel_code)
    stmt = stmt.on_conflict_do_update(
        index_elements=[R.c.member_id, R.c.staff],
        set_={"added_at": at, "channel_code": func.coalesce(stmt.excluded.channel_code, R.c.channel_code),
              "ended_at": None, "ended_by": None},
    )
    await session.execute(stmt)


async def end(session: AsyncSession, member_id: int, staff: str, *, how: str, at: datetime) -> None:
    """The relationship ended ``how`` (one of ``ENDINGS``). One siyu never saw begin (before it
    started, before a sync) is recorded as ended all the same."""
    if how not in ENDINGS:
        raise ValueError(f"a relationship ends by one of {ENDINGS}, not {how!r}")
    stmt = insert_for(session, R).values(member_id=member_id, staff=staff, added_at=at, ended_at=at, ended_by=how)
    stmt = stmt.on_conflict_do_update(
        index_elements=[R.c.member_id, R.c.staff], set_={"ended_at": at, "ended_by": how},
        where=R.c.ended_at.is_(None),
    )
    await session.execute(stmt)


async def still_a_customer(session: AsyncSession, member_id: int) -> bool:
    """Whether any staff member still has the customer as a contact."""
    return (await session.execute(
        select(R.c.staff).where(R.c.member_id == member_id, R.c.ended_at.is_(None)).limit(1)
    )).first() is not None


async def merge(session: AsyncSession, seen: Sequence[Seen]) -> tuple[int, int]:
    """Make the stored relationships say what WeCom listed (a sync page): new ones are added,
    ones that differ (remark, channel code, added at, or ended here but listed there) are
    updated, the others are left untouched. Returns (added, changed)."""
    if not seen:
        return 0, 0
    # By member only (the primary key's first column): a row-value IN list of 100 pairs is planned
    # as a scan of the whole table by PostgreSQL's generic plans.
    stored = {(r.member_id, r.staff): r for r in await session.execute(
        select(R.c.member_id, R.c.staff, R.c.added_at, R.c.channel_code, R.c.remark, R.c.ended_at)
        .where(R.c.member_id.in_(sorted({s.member_id for s in seen})))
    )}
    new, changed = [], 0
    for s in sorted(seen, key=lambda s: (s.member_id, s.staff)):
        row = stored.get((s.member_id, s.staff))
        if row is None:
            new.append({"member_id": s.member_id, "staff": s.staff, "added_at": s.added_at,
                        "channel_code": s.channel_code, "remark": s.remark})
            continue
        values = {k: v for k, v in (("added_at", s.added_at), ("channel_code", s.channel_code), ("remark", s.remark))
                  if getattr(row, k) != v}
        if row.ended_at is not None:
            values |= {"ended_at": None, "ended_by": None}
        if values:
            changed += 1
            await session.execute(update(R).where(R.c.member_id == s.member_id, R.c.staff == s.staff).values(**values))
    if new:
        # A callback may have added one meanwhile: it stays as the callback wrote it.
        await session.execute(insert_for(session, R).on_conflict_do_nothing(), new)
    return len(new), changed


async def of_member(session: AsyncSession, member_id: int) -> list[StaffRelationship]:
    """Every relationship of a customer, the lasting ones first."""
    return list((await session.execute(
        select(StaffRelationship).where(StaffRelationship.member_id == member_id)  # type: ignore[arg-type]
        .order_by(R.c.ended_at.is_not(None), R.c.staff)
    )).scalars())


async def counts(session: AsyncSession) -> dict[str, int]:
    """How many relationships last and how many ended, by how (for the sync's summary)."""
    rows = await session.execute(select(R.c.ended_by, func.count()).group_by(R.c.ended_by))
    return {(by or "active"): n for by, n in rows}

