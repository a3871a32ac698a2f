"""Tables of scheduled topics and broadcasts (DESIGN §7): the plan of each fan-out and the
delivery ledger, one row per (broadcast, group), unique, so nothing is sent twice."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Float, ForeignKey, Index, Integer, LargeBinary, Text, Unicode, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _at(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class Broadcast(SQLModel, table=True):
    """One fan-out: a playbook's slot, an operator's ``/broadcast``, a job's announcement. Its
    unique key (``sop:早安话题:2026-11-23T09:00:00+08:00``) is what makes a slot planned once,
    whichever process or restart plans it."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_playbook_slot", "playbook", "slot"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    source: str = Field(max_length=8)  # sop | adhoc | job
    playbook: Optional[str] = Field(default=None, max_length=64)
    slot: datetime = _at()  # when it was due
    template: str = Field(sa_column=Column(Text, nullable=False))
    # {"all": true} | {"tags": [...]} | {"groups": [external ids]}
    target: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # preview (waits for 确认) | planned | cancelled | missed (its slot passed while siyu was down)
    status: str = Field(max_length=12)
    reason: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(max_length=160)
    created_at: datetime = _at()
    planned_at: Optional[datetime] = _at(default=None)


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

    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    broadcast_id: int = Field(sa_column=Column(Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False))
    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), nullable=False))
    channel: str = Field(max_length=32)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    reason: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    outbox_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=True))
    planned_for: datetime = _at()  # the slot: caps and quotas count by its local day
    not_before: datetime = _at()  # quiet hours and windows move it later
    settled_at: Optional[datetime] = _at(default=None)


class GroupTag(SQLModel, table=True):
    """A tag on a group (城市群, 新品体验群 ...): broadcasts and playbooks target groups by tag."""

    __tablename__ = "group_tags"

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    tag: str = Field(max_length=64, primary_key=True)


class SchedulerJob(SQLModel, table=True):
    """APScheduler's job store (its own schema, declared here so a migration creates it)."""

    __tablename__ = "apscheduler_jobs"

    id: str = Field(sa_column=Column(Unicode(191), primary_key=True))
    next_run_time: Optional[float] = Field(default=None, sa_column=Column(Float(25), index=True))
    job_state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PlaybookState(SQLModel, table=True):
    """An operator paused a playbook (``/sop pause``): its slots are recorded, not sent."""

    __tablename__ = "playbook_states"

    name: str = Field(max_length=64, primary_key=True)
    paused: bool = Field(default=False)
    changed_by: str = Field(max_length=160)
    changed_at: datetime = _at()
