"""The audit trail: append-only rows of who did what, and what came of it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import table_of
from storage.types import utc_field


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what to whom, with which arguments, and what came of it."""

    __tablename__ = "audit_log"

    id: int = Field(default=None, primary_key=True)
    at: datetime = utc_field(index=True)
    actor: str = Field(max_length=160)  # "channel:external_id", or "system"
    action: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: str = Field(max_length=16)  # ok | refused | error
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


T = table_of(AuditEntry)


async def record(
    session: AsyncSession, *, actor: str, action: str, result: str, now: datetime,
    args: dict[str, Any] | None = None, detail: str | None = None,
) -> None:
    await session.execute(T.insert().values(
        at=now, actor=actor, action=action, args=args or {}, result=result, detail=detail,
    ))


async def latest(session: AsyncSession, *, limit: int = 20, offset: int = 0) -> list[AuditEntry]:
    rows = await session.execute(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit).offset(offset))
    return list(rows.scalars())


async def of_action(session: AsyncSession, action: str, *, since: datetime, limit: int = 200) -> list[AuditEntry]:
    """Entries of ``action`` since ``since``, oldest first (what a job reports on)."""
    rows = await session.execute(select(AuditEntry).where(col(AuditEntry.action) == action,
                                                          col(AuditEntry.at) >= since)
                                 .order_by(col(AuditEntry.id)).limit(limit))
    return list(rows.scalars())
