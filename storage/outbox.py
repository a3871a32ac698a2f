"""The outbox: outbound messages as rows, claimed by delivery workers with a lease.

A row is written in the same transaction as the update that caused it, so a message exists
exactly when the update's other changes do. Workers claim due rows for a lease; a worker that
dies leaves its rows to be reclaimed when the lease runs out.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage import advisory
from storage.sql import rowcount, table_of
from storage.types import utc_field


class OutboxMessage(SQLModel, table=True):
    """A message the bot will send (or sent). Written in the transaction of the update that made it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "not_before"),
        Index("ix_outbox_chat", "channel", "chat", "id"),
        Index("ix_outbox_to", "channel", "to", "id"),
        Index("ix_outbox_update", "update_key"),
        Index("ix_outbox_delivered", "channel", "delivered_seq"),
    )

    id: int = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True,
    ))
    update_key: str | None = Field(default=None, max_length=200)
    channel: str = Field(max_length=32)
    chat: str | None = Field(default=None, max_length=128)  # group external id; None = one-to-one
    to: str | None = Field(default=None, max_length=128)  # member external id
    text: str = Field(sa_column=Column(Text, nullable=False))
    # text | welcome (answers a WeCom welcome code, valid 20 s: sent before everything else)
    kind: str = Field(default="text", max_length=16)
    priority: int = Field(default=0)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # pending | sending | delivered | awaiting_owner (a WeCom task the group owner must confirm) | failed
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    not_before: datetime = utc_field()
    claimed_until: datetime | None = utc_field(default=None)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = utc_field()
    delivered_at: datetime | None = utc_field(default=None)
    # The order rows were delivered in (a row sent late, after a kill, has a lower id than rows
    # sent before it): what a reader pages by.
    delivered_seq: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite")))


T = table_of(OutboxMessage)

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
# Withdrawn before it went out (an operator cancelled its broadcast).
CANCELLED = "cancelled"
# Waiting for the platform's window to open again (微信客服: the user writes again).
HELD = "held"
# Handed to a person: an owner task exists but the group's owner has yet to confirm it.
AWAITING_OWNER = "awaiting_owner"
# Sent as part of another row's text (``storage.outbox_merge``): that row's ``meta["merged"]`` names it.
MERGED = "merged"
# A merged text is split below this: WeChat's text content limit, 2048 bytes (wecom.md §3.4,
# §3.5: app, webhook and KF text).
MERGED_BYTES = 2048

TEXT, WELCOME = "text", "welcome"
# An owner task: a WeCom mass-send task to several customer groups of one owner, who confirms
# it; ``to`` is the owner and ``meta["chat_ids"]`` the groups (at most 2,000, wecom.md §3.5).
# The stored kind keeps its first name.
OWNER_TASK = "group_task"
# The audit action of an owner task withdrawn because its owner changed or left (the channel
# records it, the operators are told from it).
OWNER_TASK_MOVED = "owner_task.moved"
WELCOME_PRIORITY = 10


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to put in the outbox."""

    channel: str
    text: str
    chat: str | None = None
    to: str | None = None
    update_key: str | None = None  # the update that caused it (the sandbox returns these as replies)
    kind: str = TEXT
    priority: int = 0  # higher goes first
    meta: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None  # None: now


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    channel: str
    chat: str | None
    to: str | None
    text: str
    attempts: int
    kind: str = TEXT
    meta: dict[str, Any] = field(default_factory=dict)


async def enqueue(session: AsyncSession, messages: Iterable[Outgoing], *, now: datetime) -> list[int]:
    """Insert the messages (one statement for all); their ids in the same order."""
    rows = [
        {"update_key": m.update_key, "channel": m.channel, "chat": m.chat, "to": m.to, "text": m.text,
         "kind": m.kind, "priority": m.priority, "meta": m.meta,
         "status": PENDING, "attempts": 0, "not_before": m.not_before or now, "created_at": now}
        for m in messages
    ]
    if not rows:
        return []
    # Unordered RETURNING lets SQLAlchemy send one multi-row INSERT (ordered, it sends one per
    # row); one INSERT assigns its ids in VALUES order on SQLite and PostgreSQL, so sorting them
    # gives the order of ``messages`` (checked by the storage contract test on both).
    result = await session.execute(T.insert().returning(T.c.id), rows)
    return sorted(r.id for r in result)


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta, channels: Iterable[str] | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due rows for ``lease``; expired leases of dead workers count as due."""
    due = or_(
        and_(T.c.status == PENDING, T.c.not_before <= now),
        and_(T.c.status == SENDING, T.c.claimed_until < now),
    )
    # A row waits while a row to the same chat or member is still being sent (by another pass
    # or process): one conversation never arrives shuffled. The rows being sent are few: their
    # conversations are listed once and each due row is looked up in that list. (A subquery per
    # due row walked every earlier row to its group: with thousands of group rows queued, as in
    # a rush of sign-ins, one claim took 0.6 s on SQLite, holding its only writer.)
    sending = T.alias("sending")
    in_flight = _conversation(T).in_(
        select(_conversation(sending)).where(sending.c.status == SENDING, sending.c.claimed_until >= now))
    chosen = select(T.c.id).where(due, ~in_flight).order_by(T.c.priority.desc(), T.c.id).limit(limit)
    if channels is not None:
        chosen = chosen.where(T.c.channel.in_(list(channels)))
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Several processes deliver: each takes rows nobody else holds, without waiting.
        chosen = chosen.with_for_update(skip_locked=True)
    # One statement: on SQLite every statement holds the only writer a little longer.
    result = await session.execute(
        update(T).where(T.c.id.in_(chosen.scalar_subquery()))
        .values(status=SENDING, claimed_until=now + lease, attempts=T.c.attempts + 1)
        .returning(T.c.id, T.c.channel, T.c.chat, T.c.to, T.c.text, T.c.attempts, T.c.kind, T.c.meta, T.c.priority)
    )
    rows = sorted(result, key=lambda r: (-r.priority, r.id))
    return [Claimed(r.id, r.channel, r.chat, r.to, r.text, r.attempts, r.kind, r.meta or {}) for r in rows]


def _conversation(table: Any) -> Any:
    """A row's conversation as one value, never NULL: its channel and chat, or member."""
    return (table.c.channel + "\x1f" + func.coalesce(table.c.chat, "\x1e") + "\x1f"
            + func.coalesce(table.c.to, "\x1e"))


def _held(rows: Sequence[Claimed | int]) -> Any:
    """Only a row still being sent can be settled; given the claim, only by the worker whose
    claim is current: one whose lease ran out must not undo what the next worker did. Written
    as a few ``IN`` lists (one per claim's attempt number): a statement of the same shape
    whatever the count, so SQLAlchemy compiles it once."""
    by_attempt: dict[int | None, list[int]] = {}
    for r in rows:
        by_attempt.setdefault(r.attempts if isinstance(r, Claimed) else None, []).append(
            r.id if isinstance(r, Claimed) else r)
    return and_(T.c.status == SENDING, or_(*(
        T.c.id.in_(ids) if attempts is None else and_(T.c.id.in_(ids), T.c.attempts == attempts)
        for attempts, ids in by_attempt.items())))


async def mark_delivered(session: AsyncSession, rows: Sequence[Claimed | int], *, now: datetime) -> None:
    """Delivered, numbered in the order of delivery (``delivered_seq``, what readers page by)."""
    if not rows:
        return
    seq: Any
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Numbers are drawn and committed by one process at a time: otherwise a reader could read
        # number 8 while number 7, drawn first elsewhere, is not committed yet, and skip it for good.
        await advisory.lock(session, "siyu.outbox.delivered_seq")
        seq = func.nextval("outbox_delivered_seq")
    else:
        # SQLite has one writer: past the channel's largest number so far, in the rows' order, is
        # new and last (readers page one channel at a time; ix_outbox_delivered finds its largest).
        first = min(r.id if isinstance(r, Claimed) else r for r in rows)
        same = T.alias("same")
        # COALESCE outside the subquery: a bare MAX() over an index is one seek, not a scan.
        largest = select(func.max(same.c.delivered_seq)).where(same.c.channel == T.c.channel).scalar_subquery()
        seq = func.coalesce(largest, 0) + (T.c.id - first + 1)
    await session.execute(
        update(T).where(_held(rows))
        .values(status=DELIVERED, delivered_at=now, claimed_until=None, last_error=None, delivered_seq=seq)
    )


async def note(session: AsyncSession, row_id: int, text: str) -> None:
    """Keep a word on a delivered row (why it counts as delivered without the platform saying so)."""
    await session.execute(update(T).where(T.c.id == row_id, T.c.status == DELIVERED).values(last_error=text))


async def mark_retry(session: AsyncSession, row: Claimed | int, *, error: str, not_before: datetime) -> None:
    await session.execute(
        update(T).where(_held([row]))
        .values(status=PENDING, not_before=not_before, claimed_until=None, last_error=error)
    )


async def mark_failed(session: AsyncSession, row: Claimed | int, *, error: str) -> None:
    """Given up for good; the reason stays on the row for operators to see."""
    await session.execute(update(T).where(_held([row])).values(status=FAILED, claimed_until=None, last_error=error))


async def mark_awaiting_owner(session: AsyncSession, row: Claimed | int, *, now: datetime,
                              meta: dict[str, Any]) -> None:
    """The platform took it as a task for a person (a WeCom group owner) to confirm."""
    await session.execute(
        update(T).where(_held([row])).values(status=AWAITING_OWNER, delivered_at=now, claimed_until=None, meta=meta)
    )


async def mark_held(session: AsyncSession, row: Claimed | int, *, reason: str) -> None:
    """Kept for later: the claim's attempt does not count (nothing was tried)."""
    await session.execute(update(T).where(_held([row])).values(status=HELD, claimed_until=None, last_error=reason,
                                                              attempts=T.c.attempts - 1))


async def release_held(session: AsyncSession, *, channel: str, to: str, now: datetime) -> int:
    """The window opened again: the member's held rows are due (oldest first, as they were)."""
    done = await session.execute(update(T).where(T.c.channel == channel, T.c.to == to, T.c.status == HELD)
                                 .values(status=PENDING, not_before=now))
    return rowcount(done)


async def release(session: AsyncSession, rows: Sequence[Claimed]) -> None:
    """Hand claimed rows back unsent (the worker ran short of lease): due again at once, and
    the claim that never sent them does not count as an attempt."""
    if rows:
        await session.execute(
            update(T).where(_held(rows))
            .values(status=PENDING, claimed_until=None, attempts=T.c.attempts - 1)
        )


async def withdraw(session: AsyncSession, ids: Sequence[int]) -> int:
    """Cancel rows not yet claimed; returns how many were withdrawn (a claimed one may be on
    its way and is left to finish)."""
    if not ids:
        return 0
    done = await session.execute(update(T).where(T.c.id.in_(list(ids)), T.c.status == PENDING).values(status=CANCELLED))
    return rowcount(done)


async def awaiting_owner(session: AsyncSession, *, channel: str, kind: str, limit: int = 500) -> list[OutboxMessage]:
    """Tasks handed to owners and not settled yet, oldest first."""
    return list((await session.execute(select(OutboxMessage).where(
        col(OutboxMessage.channel) == channel, col(OutboxMessage.status) == AWAITING_OWNER,
        col(OutboxMessage.kind) == kind,
    ).order_by(col(OutboxMessage.id)).limit(limit).execution_options(populate_existing=True))).scalars())


async def close_owner_task(session: AsyncSession, row_id: int, *, status: str, now: datetime,
                           meta: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Settle an owner's task (delivered, or failed with the reason), or only update its meta."""
    values: dict[str, Any] = {"status": status, "last_error": error}
    if meta is not None:
        values["meta"] = meta
    if status == DELIVERED:
        values["delivered_at"] = now
    await session.execute(update(T).where(T.c.id == row_id, T.c.status == AWAITING_OWNER).values(**values))


async def open_owner_tasks(session: AsyncSession, *, channel: str, owners: Iterable[str] | None = None,
                           limit: int = 2000) -> list[OutboxMessage]:
    """Owner tasks not sent yet or waiting for their owner (of ``owners``, or all), oldest first."""
    query = select(OutboxMessage).where(col(OutboxMessage.channel) == channel, col(OutboxMessage.kind) == OWNER_TASK,
                                        col(OutboxMessage.status).in_((PENDING, AWAITING_OWNER)))
    if owners is not None:
        query = query.where(col(OutboxMessage.to).in_(list(owners)))
    rows = await session.execute(query.order_by(col(OutboxMessage.id)).limit(limit)
                                 .execution_options(populate_existing=True))
    return list(rows.scalars())


async def withdraw_owner_task(session: AsyncSession, row_id: int, *, reason: str) -> bool:
    """An owner task withdrawn (its owner changed or left); False if it was settled meanwhile."""
    done = await session.execute(update(T).where(T.c.id == row_id, T.c.status.in_((PENDING, AWAITING_OWNER)))
                                 .values(status=CANCELLED, last_error=reason))
    return rowcount(done) == 1


async def for_update(session: AsyncSession, update_key: str) -> list[OutboxMessage]:
    """What one update made the bot say, in order."""
    rows = await session.execute(
        select(OutboxMessage).where(col(OutboxMessage.update_key) == update_key).order_by(col(OutboxMessage.id))
    )
    return list(rows.scalars())


async def delivered(
    session: AsyncSession, *, channel: str, chat: str | None = None, to: str | None = None,
    since: int = 0, limit: int = 200,
) -> list[OutboxMessage]:
    """Delivered messages of a channel in the order they were delivered, those numbered past
    ``since`` (a ``delivered_seq``): a row sent late, after a crash, still comes after the rows
    a reader has seen, though its id is lower. Optionally of one chat or to one member."""
    query = select(OutboxMessage).where(
        col(OutboxMessage.channel) == channel, col(OutboxMessage.status) == DELIVERED,
        col(OutboxMessage.delivered_seq) > since,
    )
    if chat is not None:
        query = query.where(col(OutboxMessage.chat) == chat)
    if to is not None:
        query = query.where(col(OutboxMessage.to) == to)
    rows = await session.execute(query.order_by(col(OutboxMessage.delivered_seq)).limit(limit))
    return list(rows.scalars())


# Rows whose fate is decided: what retention may delete (``settled_before``).
SETTLED = (DELIVERED, FAILED, CANCELLED, MERGED)


async def settled_before(session: AsyncSession, *, before: datetime, limit: int) -> list[int]:
    """Ids of up to ``limit`` settled rows created before ``before``, oldest first; a read, so
    the scan does not hold SQLite's only writer. Each channel's last delivered row is kept:
    SQLite numbers the next delivery after it (``mark_delivered``), and readers page by it."""
    same = T.alias("same")
    last = select(func.max(same.c.delivered_seq)).where(same.c.channel == T.c.channel).scalar_subquery()
    rows = await session.execute(select(T.c.id).where(
        T.c.status.in_(SETTLED), T.c.created_at < before,
        or_(T.c.delivered_seq.is_(None), T.c.delivered_seq < last)).order_by(T.c.id).limit(limit))
    return list(rows.scalars())


async def delete_settled(session: AsyncSession, ids: Sequence[int]) -> int:
    """Delete the rows ``ids`` that are still settled; how many."""
    if not ids:
        return 0
    return rowcount(await session.execute(delete(T).where(T.c.id.in_(list(ids)), T.c.status.in_(SETTLED))))


async def unsettled(session: AsyncSession, *, now: datetime) -> int:
    """Rows being sent or due now: what a delivery pass still has to settle."""
    due = or_(T.c.status == SENDING, and_(T.c.status == PENDING, T.c.not_before <= now))
    return (await session.execute(select(func.count()).where(due))).scalar_one()


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(T.c.status, func.count()).group_by(T.c.status))
    return {status: n for status, n in rows}
