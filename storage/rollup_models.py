"""Tables behind the console's numbers: who was active on which day, and the daily rollups
that keep the overview and the groups page fast on a million members (a page reads a few
hundred rollup rows, never the raw tables)."""
from __future__ import annotations

from datetime import date
from typing import Optional

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel


class MemberDay(SQLModel, table=True):
    """A member spoke (any text, commands included) on this local day: retention is counted from it."""

    __tablename__ = "member_days"
    __table_args__ = (Index("ix_member_days_day", "day"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))


class DailyMetric(SQLModel, table=True):
    """One number of one local day (``new_by_code`` / ``渠道A`` / 120); rewritten while the day
    can still change, then left alone."""

    __tablename__ = "daily_metrics"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    metric: str = Field(sa_column=Column(String(32), primary_key=True))
    dimension: str = Field(default="", sa_column=Column(String(128), primary_key=True))
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class GroupDay(SQLModel, table=True):
    """A group as the rollup job saw it on a day: members, those who spoke in the 7 days before,
    and its message counter (the day's messages are the difference to the day before)."""

    __tablename__ = "group_days"
    __table_args__ = (Index("ix_group_days_day", "day", "group_id"),)

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    members: int
    active_7d: int
    messages: int = Field(sa_column=Column(BigInteger, nullable=False))


class CohortRetention(SQLModel, table=True):
    """Members first seen on ``cohort`` from one channel code, and how many of them spoke again
    on day 1, 7 and 30 after it (None until that day has ended)."""

    __tablename__ = "cohort_retention"

    cohort: date = Field(sa_column=Column(Date, primary_key=True))
    source_state: str = Field(default="", sa_column=Column(String(64), primary_key=True))
    size: int
    d1: Optional[int] = None
    d7: Optional[int] = None
    d30: Optional[int] = None
