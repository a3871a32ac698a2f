"""``[[rewards]]``: the points catalog's rewards, added once by name with their stock."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from bot.config import Config, Section, Setting
from handlers.levels.services import levels_of
from storage import rewards


class RewardConfig(Section):
    """A reward of the points catalog. Added once (by name) with its stock, which operators
    manage from then on; the rules below follow the config at every start."""

    name: str = Field(min_length=1, max_length=64)
    cost: int = Field(gt=0, le=10_000_000)
    stock: int = Field(ge=0, le=10_000_000)
    # At most this many per member (0: no limit).
    per_member_limit: int = Field(0, ge=0)
    # Only members at this tier of [levels] or above may redeem it.
    min_level: str | None = Field(None, min_length=1, max_length=16)
    # Redeemable from / until (TOML date-times with an offset, e.g. 2026-12-01T00:00:00+08:00).
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # A redemption waits for an operator's approval (high-value rewards); points and the unit
    # are held meanwhile and a rejection refunds them.
    approval: bool = False
    # A virtual reward's code pool: each redemption gets one code at once, and is fulfilled.
    codes: list[str] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _window(self) -> RewardConfig:
        for field in ("starts_at", "ends_at"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{field} needs a UTC offset (e.g. +08:00)")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be later than starts_at")
        if any(not 1 <= len(code) <= 128 for code in self.codes) or len(set(self.codes)) != len(self.codes):
            raise ValueError("codes must be distinct, each 1 to 128 characters")
        if self.codes and self.stock > len(self.codes):
            raise ValueError(f"stock {self.stock} is more than the {len(self.codes)} codes of the pool")
        if self.codes and self.approval:
            raise ValueError("a code-pool reward is handed over at once: it cannot also need approval")
        return self

    def spec(self) -> rewards.RewardSpec:
        return rewards.RewardSpec(self.name, self.cost, self.stock, self.per_member_limit, self.min_level,
                                  self.starts_at, self.ends_at, self.approval, tuple(self.codes))


REWARDS: Setting[list[RewardConfig]] = Setting("rewards", list[RewardConfig], default=list)


def levels_exist(config: Config) -> None:
    """A reward's ``min_level`` must be a tier of ``[levels]``."""
    tiers = levels_of(config).names
    for reward in config[REWARDS]:
        if reward.min_level is not None and reward.min_level not in tiers:
            raise ValueError(f"reward {reward.name!r}: min_level {reward.min_level!r} is not a tier of [levels] "
                             f"({', '.join(tiers)})")
