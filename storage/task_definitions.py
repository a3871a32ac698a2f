"""Task definitions: the config's ``[[tasks]]`` and those operators add, one table."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Column, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from storage.sql import rowcount, table_of
from storage.upsert import insert_for


class TaskDefinition(SQLModel, table=True):
    """A task members check in to (打卡): from ``[[tasks]]`` (its rules follow the config at
    every start) or added by an operator (``/task add``)."""

    __tablename__ = "task_definitions"

    name: str = Field(max_length=64, primary_key=True)
    position: int = Field(default=0)  # the order of the menu
    points: int
    per_day: int = Field(default=1)
    per_week: int = Field(default=0)
    per_month: int = Field(default=0)
    proof: bool = Field(default=False)
    approval: bool = Field(default=False)
    pending_days: int = Field(default=0)
    koc_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = Field(default=True)
    source: str = Field(default="config", max_length=160)  # config, or the operator who added it


T = table_of(TaskDefinition)
RULES = ("points", "per_day", "per_week", "per_month", "proof", "approval", "pending_days", "koc_types")


async def ensure(session: AsyncSession, tasks: Sequence[dict[str, Any]]) -> None:
    """The config's tasks: added, or their rules brought in line (an operator's disable stays)."""
    for position, task in enumerate(tasks):
        rules = {k: task[k] for k in RULES}
        stmt = insert_for(session, T).values(name=task["name"], position=position, active=True, source="config",
                                             **rules)
        await session.execute(stmt.on_conflict_do_update(index_elements=[T.c.name],
                                                         set_={"position": position, **rules}))


async def active(session: AsyncSession) -> list[TaskDefinition]:
    return list((await session.execute(select(TaskDefinition).where(col(TaskDefinition.active).is_(True))
                                       .order_by(col(TaskDefinition.position), col(TaskDefinition.name)))).scalars())


async def every(session: AsyncSession) -> list[TaskDefinition]:
    return list((await session.execute(select(TaskDefinition)
                                       .order_by(col(TaskDefinition.position), col(TaskDefinition.name)))).scalars())


async def add(session: AsyncSession, task: dict[str, Any], *, by: str) -> bool:
    """An operator's new task (or one made active again with these rules); False if a task of
    that name is active already."""
    existing = await session.get(TaskDefinition, task["name"])
    if existing is not None and existing.active:
        return False
    last = (await session.execute(select(func.max(T.c.position)))).scalar_one()
    rules = {k: task[k] for k in RULES}
    stmt = insert_for(session, T).values(name=task["name"], position=(last or 0) + 1, active=True, source=by, **rules)
    await session.execute(stmt.on_conflict_do_update(index_elements=[T.c.name],
                                                     set_={"active": True, "source": by, **rules}))
    return True


async def disable(session: AsyncSession, name: str) -> bool:
    done = await session.execute(update(T).where(T.c.name == name, T.c.active.is_(True)).values(active=False))
    return rowcount(done) == 1
