"""``[levels]``: member tiers by lifetime points, named by default after the game ranks players
know (游戏排位: 青铜 → 白银 → 黄金 → 铂金 → 钻石), so each step reads as a rise."""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.config import Section, Setting


class Tier(Section):
    name: str = Field(min_length=1, max_length=16)
    # Lifetime points (all ever earned, spending does not lower it) from which this tier holds.
    min_points: int = Field(ge=0)


def _default_tiers() -> list[Tier]:
    # Not 白金 between 白银 and 黄金: in Chinese 白金 (platinum) ranks above 黄金.
    return [Tier(name="青铜", min_points=0), Tier(name="白银", min_points=500), Tier(name="黄金", min_points=2000),
            Tier(name="铂金", min_points=5000), Tier(name="钻石", min_points=10000)]


class LevelsConfig(Section):
    """Game-like member levels by lifetime points; the first tier starts at 0."""

    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1, max_length=20)
    # Also congratulate in the group where the level-up happened.
    announce_in_group: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> LevelsConfig:
        mins = [t.min_points for t in self.tiers]
        if mins[0] != 0 or mins != sorted(set(mins)):
            raise ValueError("tiers start at min_points = 0 and rise strictly")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        return self

    def tier(self, lifetime_points: int) -> str:
        return [t.name for t in self.tiers if t.min_points <= lifetime_points][-1]

    def rank(self, name: str | None) -> int:
        """The tier's position (0 = the first); -1 for an unknown name."""
        names = [t.name for t in self.tiers]
        return names.index(name) if name in names else -1

    def next_tier(self, lifetime_points: int) -> Tier | None:
        return next((t for t in self.tiers if t.min_points > lifetime_points), None)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]


LEVELS = Setting("levels", LevelsConfig)
