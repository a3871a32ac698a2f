"""APScheduler's job store table, declared here so that a migration creates it and Alembic's
metadata knows it. Only APScheduler reads and writes its rows (``bot.scheduler``)."""
from __future__ import annotations

from sqlalchemy import Column, Float, LargeBinary, Unicode
from sqlmodel import Field, SQLModel


class SchedulerJob(SQLModel, table=True):
    """APScheduler's job store (its own schema, declared here so a migration creates it)."""

    __tablename__ = "apscheduler_jobs"

    id: str = Field(sa_column=Column(Unicode(191), primary_key=True))
    next_run_time: float | None = Field(default=None, sa_column=Column(Float(25), index=True))
    job_state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
