"""``[[tasks]]``: what members check in to (打卡), e.g. sharing the brand's article for 100 points."""
from __future__ import annotations

from pydantic import Field

from bot.config import Section, Setting
from handlers.koc.services import KocType


class TaskConfig(Section):
    """A task members check in to (打卡), e.g. sharing the brand's article for 100 points."""

    name: str = Field(min_length=1, max_length=64)
    points: int = Field(gt=0, le=1_000_000)
    # Check-ins counted (0: no cap) per local day, week (from Monday) and month.
    per_day: int = Field(1, ge=0)
    per_week: int = Field(0, ge=0)
    per_month: int = Field(0, ge=0)
    # The member must send something with the check-in (a link, a screenshot's note).
    proof: bool = False
    # Points only once an operator approves.
    approval: bool = False
    # The points are pending (shown, not spendable) this many days, e.g. a purchase's return window.
    pending_days: int = Field(0, ge=0, le=365)
    # Only members approved as one of these KOC types may check in (empty: everyone).
    koc_types: list[KocType] = Field(default_factory=list)


TASKS: Setting[list[TaskConfig]] = Setting("tasks", list[TaskConfig], default=list)
