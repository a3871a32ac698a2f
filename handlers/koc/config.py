"""``[koc]``: KOC screening, its keyword, reminders and the scoring rubric."""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.config import Section, Setting


class KocRubric(Section):
    """Points toward the 0–100 KOC score (the total is capped at 100)."""

    bought: int = Field(25, ge=0, le=100)
    activities_often: int = Field(20, ge=0, le=100)
    activities_sometimes: int = Field(10, ge=0, le=100)
    per_platform: int = Field(5, ge=0, le=100)
    platforms_max: int = Field(15, ge=0, le=100)
    followers_100: int = Field(5, ge=0, le=100)
    followers_1000: int = Field(10, ge=0, le=100)
    followers_10000: int = Field(20, ge=0, le=100)
    hours_2: int = Field(5, ge=0, le=100)
    hours_5: int = Field(10, ge=0, le=100)
    # Below this score the recommendation still goes to review, marked as weak.
    pass_score: int = Field(40, ge=0, le=100)


class KocConfig(Section):
    enabled: bool = True
    # A member who sends this (one-to-one) starts a screening.
    keyword: str = Field("申请KOC", min_length=1, max_length=32)
    # After this many messages a member is invited once (0: never).
    activity_threshold: int = Field(0, ge=0)
    remind_after_s: int = Field(86_400, ge=60)
    expire_after_s: int = Field(259_200, ge=60)
    rubric: KocRubric = KocRubric()

    @model_validator(mode="after")
    def _order(self) -> KocConfig:
        if self.expire_after_s <= self.remind_after_s:
            raise ValueError("expire_after_s must be later than remind_after_s")
        return self


KOC = Setting("koc", KocConfig)
