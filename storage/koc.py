"""KOC applications: a screening's result, waiting for an operator's decision."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import KocApplication

T = KocApplication.__table__
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
        select(KocApplication).where(KocApplication.member_id == member_id, KocApplication.status == PENDING)
    )).scalars().first()


async def pending(session: AsyncSession, *, limit: int = 50) -> list[KocApplication]:
    """The review queue, oldest first."""
    rows = await session.execute(
        select(KocApplication).where(KocApplication.status == PENDING).order_by(KocApplication.created_at).limit(limit)
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
    if result.rowcount != 1:
        return None
    return (await session.execute(
        select(KocApplication).where(KocApplication.id == application_id).execution_options(populate_existing=True)
    )).scalar_one()
