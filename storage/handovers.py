"""Handovers (在职/离职继承) of a staff member's customers and groups, and the staff who left.

A handover is asked for by an operator (chat or the REST API) and carried out by the channel
that can transfer contacts (WeCom): it lists what the staff member has, asks the platform to
move each customer and group, and follows each one (``handover_items``) until the platform says
where it ended. The staff who left are kept so that nothing waits for an owner who cannot
confirm it any more."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.community import Group
from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class Handover(SQLModel, table=True):
    """One request: ``from_staff``'s customers, groups or both go to ``to_staff``. ``mode`` is
    onjob (在职继承: the customer may refuse within 24 h) or resigned (离职继承)."""

    __tablename__ = "handovers"
    __table_args__ = (Index("ix_handovers_status", "status"),)

    id: int = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    scope: str = Field(max_length=12)  # customers | groups | all
    mode: str = Field(max_length=12)  # onjob | resigned
    from_staff: str = Field(max_length=128)
    to_staff: str = Field(max_length=128)
    # pending (the channel has not started it) | starting (its transfers are being asked for) |
    # running (items wait for the platform) | done | failed
    status: str = Field(max_length=12)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requested_by: str = Field(max_length=160)  # "channel:id" or "api:token"
    created_at: datetime = utc_field()
    finished_at: datetime | None = utc_field(default=None)
    reported: bool = Field(default=False)


class HandoverItem(SQLModel, table=True):
    """One customer or group of a handover, and where it stands."""

    __tablename__ = "handover_items"
    __table_args__ = (UniqueConstraint("handover_id", "kind", "target", name="uq_handover_items_target"),)

    id: int = Field(default=None, primary_key=True)
    handover_id: int = Field(sa_column=Column(Integer, ForeignKey("handovers.id", ondelete="CASCADE"),
                                              nullable=False))
    kind: str = Field(max_length=12)  # customer | group
    target: str = Field(max_length=128)  # external_userid | chat_id
    # waiting (the customer has 24 h to refuse) | done | refused | failed
    status: str = Field(max_length=12)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_at: datetime = utc_field()


class DepartedStaff(SQLModel, table=True):
    """A staff member who left the company (WeCom's contact event ``delete_user``)."""

    __tablename__ = "departed_staff"

    channel: str = Field(max_length=32, primary_key=True)
    staff: str = Field(max_length=128, primary_key=True)
    left_at: datetime = utc_field()


H, HI, DS = table_of(Handover), table_of(HandoverItem), table_of(DepartedStaff)

SCOPES = ("customers", "groups", "all")
MODES = ("onjob", "resigned")
PENDING, STARTING, RUNNING, DONE, FAILED = "pending", "starting", "running", "done", "failed"
OPEN = (PENDING, STARTING, RUNNING)
WAITING, REFUSED = "waiting", "refused"
ITEM_STATUSES = (WAITING, DONE, REFUSED, FAILED)


async def create(session: AsyncSession, *, channel: str, scope: str, mode: str, from_staff: str, to_staff: str,
                 requested_by: str, now: datetime) -> Handover:
    row = Handover(channel=channel, scope=scope, mode=mode, from_staff=from_staff, to_staff=to_staff, status=PENDING,
                   requested_by=requested_by, created_at=now)
    session.add(row)
    await session.flush()
    return row


async def get(session: AsyncSession, handover_id: int) -> Handover | None:
    return (await session.execute(select(Handover).where(col(Handover.id) == handover_id)
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


async def open_for(session: AsyncSession, from_staff: str) -> Handover | None:
    """A handover of ``from_staff`` not finished yet (one at a time: WeCom refuses a customer
    already being transferred)."""
    return (await session.execute(select(Handover).where(
        col(Handover.from_staff) == from_staff, col(Handover.status).in_(OPEN),
    ).limit(1))).scalar_one_or_none()


async def of_status(session: AsyncSession, channel: str, status: str, *, limit: int = 50) -> list[Handover]:
    return list((await session.execute(select(Handover).where(
        col(Handover.channel) == channel, col(Handover.status) == status,
    ).order_by(col(Handover.id)).limit(limit).execution_options(populate_existing=True))).scalars())


async def start(session: AsyncSession, handover_id: int) -> bool:
    """The channel takes a pending handover; False if another process took it first."""
    done = await session.execute(update(H).where(H.c.id == handover_id, H.c.status == PENDING)
                                 .values(status=STARTING))
    return rowcount(done) == 1


async def started(session: AsyncSession, handover_id: int) -> None:
    """Every transfer of the handover was asked for: from now on its results are polled (not
    before, or a poll would find nothing waiting yet and call it done)."""
    await session.execute(update(H).where(H.c.id == handover_id, H.c.status == STARTING).values(status=RUNNING))


async def add_items(session: AsyncSession, handover_id: int, kind: str,
                    results: dict[str, tuple[str, str | None]], *, now: datetime) -> None:
    """Record each target's first answer: ``{target: (status, reason)}``."""
    for target, (status, reason) in results.items():
        await session.execute(insert_for(session, HI).values(
            handover_id=handover_id, kind=kind, target=target, status=status, reason=reason, updated_at=now,
        ).on_conflict_do_nothing(index_elements=[HI.c.handover_id, HI.c.kind, HI.c.target]))


async def waiting(session: AsyncSession, handover_id: int) -> list[str]:
    """Customers of the handover still waiting for the platform."""
    return list((await session.execute(select(HI.c.target).where(
        HI.c.handover_id == handover_id, HI.c.status == WAITING))).scalars())


async def settle(session: AsyncSession, handover_id: int, results: dict[str, tuple[str, str | None]], *,
                 now: datetime) -> None:
    for target, (status, reason) in results.items():
        await session.execute(update(HI).where(HI.c.handover_id == handover_id, HI.c.target == target,
                                              HI.c.status == WAITING)
                              .values(status=status, reason=reason, updated_at=now))


async def finish(session: AsyncSession, handover_id: int, *, status: str, now: datetime,
                 error: str | None = None) -> None:
    await session.execute(update(H).where(H.c.id == handover_id, H.c.status.in_(OPEN))
                          .values(status=status, error=error, finished_at=now))


async def counts(session: AsyncSession, handover_id: int) -> Counter[tuple[str, str]]:
    """(kind, status) → how many items."""
    rows = await session.execute(select(HI.c.kind, HI.c.status, func.count()).where(HI.c.handover_id == handover_id)
                                 .group_by(HI.c.kind, HI.c.status))
    return Counter({(k, s): n for k, s, n in rows.all()})


async def reasons(session: AsyncSession, handover_id: int, *, limit: int = 5) -> list[tuple[str, str]]:
    """Some of the targets that did not move, with the platform's reason."""
    rows = await session.execute(select(HI.c.target, HI.c.reason).where(
        HI.c.handover_id == handover_id, HI.c.status.in_((REFUSED, FAILED))).order_by(HI.c.id).limit(limit))
    return [(t, r or "") for t, r in rows.all()]


async def unreported(session: AsyncSession, *, limit: int = 50) -> list[Handover]:
    return list((await session.execute(select(Handover).where(
        col(Handover.status).in_((DONE, FAILED)), col(Handover.reported).is_(False),
    ).order_by(col(Handover.id)).limit(limit))).scalars())


async def mark_reported(session: AsyncSession, handover_id: int) -> bool:
    """True for the first caller: every process runs the reporting job."""
    done = await session.execute(update(H).where(H.c.id == handover_id, H.c.reported.is_(False)).values(reported=True))
    return rowcount(done) == 1


async def departed(session: AsyncSession, channel: str, staff: Sequence[str] | None = None) -> set[str]:
    query = select(DS.c.staff).where(DS.c.channel == channel)
    if staff is not None:
        query = query.where(DS.c.staff.in_(list(staff)))
    return set((await session.execute(query)).scalars())


async def mark_departed(session: AsyncSession, channel: str, staff: str, *, now: datetime) -> bool:
    """True if ``staff`` was not known to have left."""
    stmt = insert_for(session, DS).values(staff=staff, channel=channel, left_at=now).on_conflict_do_nothing(
        index_elements=[DS.c.channel, DS.c.staff])
    return (await session.execute(stmt.returning(DS.c.staff))).first() is not None


async def owners_of(session: AsyncSession, channel: str, chat_ids: Sequence[str]) -> dict[str, str | None]:
    """The stored owner of each group (external id) of ``channel``."""
    if not chat_ids:
        return {}
    rows = await session.execute(select(col(Group.external_id), col(Group.owner)).where(
        col(Group.channel) == channel, col(Group.external_id).in_(list(chat_ids))))
    return {chat: owner for chat, owner in rows.all()}


async def set_owner(session: AsyncSession, channel: str, chat_ids: Sequence[str], owner: str) -> None:
    """Groups given to ``owner`` through the API (WeCom sends no callback for those)."""
    if chat_ids:
        await session.execute(update(Group).where(col(Group.channel) == channel,
                                                  col(Group.external_id).in_(list(chat_ids))).values(owner=owner))
