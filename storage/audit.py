"""The audit trail: append-only rows of who did what, and what came of it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry

T = AuditEntry.__table__


async def record(
    session: AsyncSession, *, actor: str, action: str, result: str, now: datetime,
    args: dict[str, Any] | None = None, detail: str | None = None,
) -> None:
    await session.execute(T.insert().values(
        at=now, actor=actor, action=action, args=args or {}, result=result, detail=detail,
    ))


async def latest(session: AsyncSession, *, limit: int = 20, offset: int = 0) -> list[AuditEntry]:
    rows = await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return list(rows.scalars())
