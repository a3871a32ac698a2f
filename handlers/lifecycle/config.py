"""``[lifecycle]``: how members are placed in the brand articles' layers of a private domain."""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.config import Section, Setting


class LifecycleConfig(Section):
    """The lifecycle stage shown to operators, from the brand articles' layers: 超级用户 (an
    approved KOC), 核心用户 (bought, and active on ``core_days`` of the last ``window_days``),
    精准用户 (bought, or active on ``engaged_days``), otherwise 泛用户. Active: signed in that
    day. Bought: said so in KOC screening, or checked in to one of ``purchase_tasks``."""

    window_days: int = Field(30, ge=1, le=365)
    engaged_days: int = Field(3, ge=1)
    core_days: int = Field(10, ge=1)
    # Tasks whose credited check-in shows a purchase (e.g. "晒单").
    purchase_tasks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleConfig:
        if not self.engaged_days <= self.core_days <= self.window_days:
            raise ValueError("engaged_days <= core_days <= window_days")
        return self


LIFECYCLE = Setting("lifecycle", LifecycleConfig)
