"""Broadcasts and their delivery ledger (DESIGN §7): planning writes one delivery per
(broadcast, group) under a unique key, so a restart or a second process plans nothing twice;
settling mirrors what the outbox and the platform said about each group."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.community import Group
from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class Broadcast(SQLModel, table=True):
    """One fan-out: a playbook's slot, an operator's ``/broadcast``, a job's announcement. Its
    unique key (``sop:早安话题:2026-11-23T09:00:00+08:00``) is what makes a slot planned once,
    whichever process or restart plans it."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_playbook_slot", "playbook", "slot"),)

    id: int = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    source: str = Field(max_length=8)  # sop | adhoc | job
    playbook: str | None = Field(default=None, max_length=64)
    slot: datetime = utc_field()  # when it was due
    template: str = Field(sa_column=Column(Text, nullable=False))
    # {"all": true} | {"tags": [...]} | {"groups": [external ids]}
    target: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # preview (waits for 确认) | planned | cancelled | missed (its slot passed while siyu was down)
    status: str = Field(max_length=12)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(max_length=160)
    created_at: datetime = utc_field()
    planned_at: datetime | None = utc_field(default=None)


class Delivery(SQLModel, table=True):
    """One broadcast to one group. ``planned`` waits for its time (or, on a quota-limited
    channel, to be packed with the group's other items into the day's digest); ``queued`` has
    an outbox row; then delivered, awaiting_owner (a WeCom task the owner must confirm),
    failed, expired (the owner never confirmed), skipped (a cap or quota, with the reason) or
    cancelled."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "group_id", name="uq_deliveries_broadcast_group"),
        Index("ix_deliveries_group_day", "group_id", "planned_for"),
        Index("ix_deliveries_outbox", "outbox_id"),
        Index("ix_deliveries_due", "status", "not_before"),
    )

    id: int = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True,
    ))
    broadcast_id: int = Field(sa_column=Column(
        Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False,
    ))
    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), nullable=False))
    channel: str = Field(max_length=32)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outbox_id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True,
    ))
    planned_for: datetime = utc_field()  # the slot: caps and quotas count by its local day
    not_before: datetime = utc_field()  # quiet hours and windows move it later
    settled_at: datetime | None = utc_field(default=None)


class GroupTag(SQLModel, table=True):
    """A tag on a group (城市群, 新品体验群 ...): broadcasts and playbooks target groups by tag."""

    __tablename__ = "group_tags"

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    tag: str = Field(max_length=64, primary_key=True)


class PlaybookState(SQLModel, table=True):
    """An operator paused a playbook (``/sop pause``): its slots are recorded, not sent."""

    __tablename__ = "playbook_states"

    name: str = Field(max_length=64, primary_key=True)
    paused: bool = Field(default=False)
    changed_by: str = Field(max_length=160)
    changed_at: datetime = utc_field()


B = table_of(Broadcast)
D = table_of(Delivery)
GT = table_of(GroupTag)

PREVIEW, PLANNED, CANCELLED, MISSED = "preview", "planned", "cancelled", "missed"
# Delivery statuses. Final: delivered, failed, expired, skipped, cancelled.
QUEUED, DELIVERED, AWAITING_OWNER, FAILED, EXPIRED, SKIPPED = (
    "queued", "delivered", "awaiting_owner", "failed", "expired", "skipped")
OPEN = (PLANNED, QUEUED, AWAITING_OWNER)
# What counts toward a group's daily cap and quota: everything that was or will be sent.
COUNTED = (PLANNED, QUEUED, AWAITING_OWNER, DELIVERED)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    group_id: int
    channel: str
    text: str
    status: str
    not_before: datetime
    reason: str | None = None
    outbox_id: int | None = None  # already queued (a direct channel's row)


async def create(session: AsyncSession, *, key: str, source: str, slot: datetime, template: str,
                 target: dict[str, Any], status: str, created_by: str, now: datetime, playbook: str | None = None,
                 reason: str | None = None) -> int | None:
    """The new broadcast's id, or None if ``key`` exists (this slot was planned before)."""
    stmt = insert_for(session, B).values(
        key=key, source=source, playbook=playbook, slot=slot, template=template, target=target, status=status,
        reason=reason, created_by=created_by, created_at=now, planned_at=now if status == PLANNED else None,
    ).on_conflict_do_nothing(index_elements=[B.c.key]).returning(B.c.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def exists(session: AsyncSession, key: str) -> bool:
    return (await session.execute(select(B.c.id).where(B.c.key == key))).first() is not None


async def get(session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    return (await session.execute(select(Broadcast).where(col(Broadcast.id) == broadcast_id)
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


async def confirm(session: AsyncSession, broadcast_id: int, *, now: datetime) -> bool:
    """A previewed broadcast goes ahead; False if it is not waiting for confirmation."""
    done = await session.execute(update(B).where(B.c.id == broadcast_id, B.c.status == PREVIEW)
                                 .values(status=PLANNED, planned_at=now))
    return rowcount(done) == 1


async def targets(session: AsyncSession, target: dict[str, Any]) -> list[Group]:
    """The active groups a target names: all, those with any of ``tags``, or by external id."""
    query = select(Group).where(col(Group.status) == "active").order_by(col(Group.id))
    if target.get("tags"):
        query = query.where(col(Group.id).in_(select(GT.c.group_id).where(GT.c.tag.in_(list(target["tags"])))))
    elif target.get("groups"):
        query = query.where(col(Group.external_id).in_(list(target["groups"])))
    elif not target.get("all"):
        return []
    return list((await session.execute(query)).scalars())


async def add_deliveries(session: AsyncSession, broadcast_id: int, rows: Sequence[NewDelivery], *,
                         slot: datetime, now: datetime) -> list[int]:
    """Insert the deliveries (one statement); their ids in the order of ``rows``."""
    if not rows:
        return []
    params = [{"broadcast_id": broadcast_id, "group_id": r.group_id, "channel": r.channel, "text": r.text,
               "status": r.status, "reason": r.reason, "planned_for": slot, "not_before": r.not_before,
               "outbox_id": r.outbox_id,
               "settled_at": now if r.status == SKIPPED else None} for r in rows]
    # As in the outbox: one multi-row INSERT assigns ids in VALUES order on both databases.
    result = await session.execute(D.insert().returning(D.c.id), params)
    return sorted(r.id for r in result)


async def counted_since(session: AsyncSession, group_ids: Iterable[int], since: datetime,
                        until: datetime) -> Counter[int]:
    """Per group: deliveries planned for [since, until) that were or will be sent."""
    ids = list(group_ids)
    if not ids:
        return Counter()
    rows = await session.execute(select(D.c.group_id, func.count()).where(
        D.c.group_id.in_(ids), D.c.planned_for >= since, D.c.planned_for < until, D.c.status.in_(COUNTED),
    ).group_by(D.c.group_id))
    return Counter(dict(rows.all()))


async def messages_since(session: AsyncSession, group_ids: Iterable[int], since: datetime) -> Counter[int]:
    """Per group: distinct messages handed over since ``since`` (a digest of several items is
    one message): what a WeCom group's receive quota counts."""
    ids = list(group_ids)
    if not ids:
        return Counter()
    rows = await session.execute(select(D.c.group_id, func.count(func.distinct(D.c.outbox_id))).where(
        D.c.group_id.in_(ids), D.c.outbox_id.is_not(None), D.c.planned_for >= since,
        D.c.status.in_((QUEUED, AWAITING_OWNER, DELIVERED)),
    ).group_by(D.c.group_id))
    return Counter(dict(rows.all()))


async def due(session: AsyncSession, *, channel: str, now: datetime, limit: int = 10_000) -> list[Delivery]:
    """Planned deliveries of ``channel`` whose time has come, oldest first."""
    return list((await session.execute(select(Delivery).where(
        col(Delivery.channel) == channel, col(Delivery.status) == PLANNED, col(Delivery.not_before) <= now,
    ).order_by(col(Delivery.id)).limit(limit))).scalars())


async def queue(session: AsyncSession, pairs: Sequence[tuple[int, int]]) -> None:
    """(delivery id, outbox id): the deliveries now have an outbox row."""
    if pairs:
        await session.execute(update(D).where(D.c.id == bindparam("d"), D.c.status == PLANNED)
                              .values(status=QUEUED, outbox_id=bindparam("o")),
                              [{"d": d, "o": o} for d, o in pairs])


async def skip(session: AsyncSession, delivery_ids: Sequence[int], reason: str, *, now: datetime) -> None:
    if delivery_ids:
        await session.execute(update(D).where(D.c.id.in_(list(delivery_ids)), D.c.status == PLANNED)
                              .values(status=SKIPPED, reason=reason, settled_at=now))


async def mirror(session: AsyncSession, outbox_ids: Sequence[int], status: str, *, now: datetime,
                 reason: str | None = None) -> int:
    """Deliveries of these outbox rows take the row's outcome (delivered, awaiting_owner,
    failed). Returns how many changed."""
    if not outbox_ids:
        return 0
    final = status in (DELIVERED, FAILED)
    done = await session.execute(update(D)
                                 .where(D.c.outbox_id.in_(list(outbox_ids)), D.c.status.in_((QUEUED, AWAITING_OWNER)))
                                 .values(status=status, reason=reason, settled_at=now if final else None))
    return rowcount(done)


async def settle_groups(session: AsyncSession, outbox_id: int, chat_ids: dict[str, tuple[str, str | None]], *,
                        now: datetime) -> int:
    """A WeCom task's per-group results: ``{chat external id: (status, reason)}``."""
    changed = 0
    for chat, (status, reason) in chat_ids.items():
        group = select(col(Group.id)).where(col(Group.external_id) == chat).scalar_subquery()
        done = await session.execute(update(D).where(D.c.outbox_id == outbox_id, D.c.group_id == group,
                                                     D.c.status == AWAITING_OWNER)
                                     .values(status=status, reason=reason, settled_at=now))
        changed += rowcount(done)
    return changed


async def cancel(session: AsyncSession, broadcast_id: int, *, now: datetime) -> list[int] | None:
    """Cancel what has not gone out; returns the outbox ids still pending, for the caller to
    withdraw, or None when nothing was left to cancel (every group already sent or settled: the
    broadcast stays as it ended). A preview is simply cancelled."""
    still_open = select(D.c.id).where(D.c.broadcast_id == broadcast_id, D.c.status.in_((PLANNED, QUEUED))).exists()
    done = await session.execute(update(B).where(
        B.c.id == broadcast_id, or_(B.c.status == PREVIEW, and_(B.c.status == PLANNED, still_open)),
    ).values(status=CANCELLED))
    if rowcount(done) == 0:
        return None
    outbox_ids = list((await session.execute(select(D.c.outbox_id).where(
        D.c.broadcast_id == broadcast_id, D.c.status == QUEUED, D.c.outbox_id.is_not(None)))).scalars())
    await session.execute(update(D).where(D.c.broadcast_id == broadcast_id, D.c.status.in_((PLANNED, QUEUED)))
                          .values(status=CANCELLED, reason="cancelled by an operator", settled_at=now))
    return outbox_ids


async def delivery_counts(session: AsyncSession) -> Counter[str]:
    """Deliveries of every broadcast by status (``/metrics``): one pass over the status index."""
    rows = await session.execute(select(D.c.status, func.count()).group_by(D.c.status))
    return Counter(dict(rows.all()))


async def progress(session: AsyncSession, broadcast_id: int) -> Counter[str]:
    """How many of the broadcast's deliveries are in each status."""
    rows = await session.execute(select(D.c.status, func.count()).where(D.c.broadcast_id == broadcast_id)
                                 .group_by(D.c.status))
    return Counter(dict(rows.all()))


async def last_slot(session: AsyncSession, playbook: str) -> datetime | None:
    return (await session.execute(select(func.max(B.c.slot)).where(B.c.playbook == playbook))).scalar_one_or_none()


async def tag_groups(session: AsyncSession, group_ids: Sequence[int], tags: Sequence[str], *,
                     remove: bool = False) -> None:
    if remove:
        await session.execute(delete(GT).where(GT.c.group_id.in_(list(group_ids)), GT.c.tag.in_(list(tags))))
        return
    stmt = insert_for(session, GT).on_conflict_do_nothing(index_elements=[GT.c.group_id, GT.c.tag])
    await session.execute(stmt, [{"group_id": g, "tag": t} for g in group_ids for t in tags])


async def groups_by_id(session: AsyncSession, ids: Sequence[int]) -> list[Group]:
    return list((await session.execute(select(Group).where(col(Group.id).in_(list(ids))))).scalars())


async def paused(session: AsyncSession) -> set[str]:
    """The playbooks operators paused."""
    return set((await session.execute(select(col(PlaybookState.name))
                                      .where(col(PlaybookState.paused).is_(True)))).scalars())


async def set_paused(session: AsyncSession, name: str, value: bool, *, by: str, now: datetime) -> None:
    P = table_of(PlaybookState)
    stmt = insert_for(session, P).values(name=name, paused=value, changed_by=by, changed_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[P.c.name],
                                                     set_={"paused": value, "changed_by": by, "changed_at": now}))


async def recent(session: AsyncSession, playbook: str, *, limit: int = 3) -> list[Broadcast]:
    return list((await session.execute(select(Broadcast).where(col(Broadcast.playbook) == playbook)
                                       .order_by(col(Broadcast.slot).desc()).limit(limit))).scalars())


async def latest(session: AsyncSession, *, limit: int) -> list[Broadcast]:
    """The newest broadcasts first."""
    return list((await session.execute(select(Broadcast).order_by(col(Broadcast.id).desc()).limit(limit))).scalars())


async def progress_of(session: AsyncSession, broadcast_ids: Sequence[int]) -> dict[int, Counter[str]]:
    """Per broadcast: how many of its deliveries are in each status."""
    out: dict[int, Counter[str]] = {b: Counter() for b in broadcast_ids}
    if broadcast_ids:
        rows = await session.execute(select(D.c.broadcast_id, D.c.status, func.count())
                                     .where(D.c.broadcast_id.in_(list(broadcast_ids)))
                                     .group_by(D.c.broadcast_id, D.c.status))
        for broadcast_id, status, n in rows:
            out[broadcast_id][status] = n
    return out


async def sample_texts(session: AsyncSession, broadcast_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """Per broadcast with deliveries: the text its first group got, and how many different
    texts its groups got (placeholders such as {group} fill in per group)."""
    if not broadcast_ids:
        return {}
    firsts = (await session.execute(select(D.c.broadcast_id, func.min(D.c.id), func.count(func.distinct(D.c.text)))
                                    .where(D.c.broadcast_id.in_(list(broadcast_ids)))
                                    .group_by(D.c.broadcast_id))).all()
    texts = dict((await session.execute(select(D.c.id, D.c.text)
                                        .where(D.c.id.in_([first for _, first, _ in firsts])))).all())
    return {broadcast_id: (texts[first], variants) for broadcast_id, first, variants in firsts}


async def next_due(session: AsyncSession, broadcast_ids: Sequence[int]) -> dict[int, datetime]:
    """Per broadcast with deliveries not yet handed over: the earliest time one may go out."""
    if not broadcast_ids:
        return {}
    rows = await session.execute(select(D.c.broadcast_id, func.min(D.c.not_before))
                                 .where(D.c.broadcast_id.in_(list(broadcast_ids)), D.c.status.in_((PLANNED, QUEUED)))
                                 .group_by(D.c.broadcast_id))
    return dict(rows.all())  # min() keeps the column's type: aware UTC on both databases
