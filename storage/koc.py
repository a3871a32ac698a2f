"""KOC applications: a screening's result, waiting for an operator's decision."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.types import utc_field


class KocApplication(SQLModel, table=True):
    """A member's KOC screening result, waiting for (or carrying) an operator's decision."""

    __tablename__ = "koc_applications"
    __table_args__ = (Index("ix_koc_applications_status", "status", "created_at"),)

    id: int = Field(default=None, primary_key=True)
    member_id: int = Field(
        sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    )
    score: int
    recommended_type: str = Field(max_length=16)  # 分享官 | 内容官 | 体验官 | 带货官
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | approved | rejected
    approved_type: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=160)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = utc_field()
    decided_at: datetime | None = utc_field(default=None)


T = table_of(KocApplication)
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


async def submit(session: AsyncSession, member_id: int, *, score: int, recommended_type: str,
                 answers: dict[str, Any], now: datetime) -> int:
    result = await session.execute(T.insert().values(
        member_id=member_id, score=score, recommended_type=recommended_type, answers=answers, status=PENDING,
        created_at=now,
    ).returning(T.c.id))
    return int(result.scalar_one())


async def pending_of(session: AsyncSession, member_id: int) -> KocApplication | None:
    return (await session.execute(
        select(KocApplication).where(col(KocApplication.member_id) == member_id, col(KocApplication.status) == PENDING)
    )).scalars().first()


async def latest_of(session: AsyncSession, member_id: int) -> KocApplication | None:
    """The member's newest application, whatever its status."""
    return (await session.execute(
        select(KocApplication).where(col(KocApplication.member_id) == member_id)
        .order_by(col(KocApplication.created_at).desc(), col(KocApplication.id).desc()).limit(1)
    )).scalars().first()


async def pending(session: AsyncSession, *, limit: int = 50) -> list[KocApplication]:
    """The review queue, oldest first."""
    rows = await session.execute(
        select(KocApplication).where(col(KocApplication.status) == PENDING)
        .order_by(col(KocApplication.created_at)).limit(limit)
    )
    return list(rows.scalars())


async def decide(session: AsyncSession, application_id: int, *, approve: bool, decided_by: str, now: datetime,
                 approved_type: str | None = None, reason: str | None = None) -> KocApplication | None:
    """Approve or reject a pending application; None if it is not pending (decided already)."""
    result = await session.execute(
        update(T).where(T.c.id == application_id, T.c.status == PENDING)
        .values(status=APPROVED if approve else REJECTED, approved_type=approved_type if approve else None,
                decided_by=decided_by, reason=reason, decided_at=now)
    )
    if rowcount(result) != 1:
        return None
    return (await session.execute(
        select(KocApplication).where(col(KocApplication.id) == application_id).execution_options(populate_existing=True)
    )).scalar_one()
