"""Config of the points economy (DESIGN §6): sign-in, tasks, levels, the catalog, caps, expiry,
leaderboards and the lifecycle stages. ``bot.config`` re-exports every section."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config_section import Section, zone_name

KOC_TYPES = Literal["分享官", "内容官", "体验官", "带货官"]


class CheckinConfig(Section):
    enabled: bool = True
    # What a member sends (in a group or one-to-one) to sign in.
    keyword: str = Field("签到", min_length=1, max_length=32)
    # Days, weeks and months (sign-in, caps, leaderboards) begin at midnight in this time zone.
    timezone: str = "Asia/Shanghai"
    daily_points: int = Field(10, ge=0, le=100_000)
    # Extra points on reaching a streak of N days in a row: {"7" = 50, "30" = 200}.
    streak_bonus: dict[str, int] = Field(default_factory=lambda: {"7": 50, "30": 200})

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)

    @field_validator("streak_bonus")
    @classmethod
    def _bonus(cls, value: dict[str, int]) -> dict[str, int]:
        for days, points in value.items():
            if not days.isdigit() or int(days) < 2:
                raise ValueError(f"streak_bonus key {days!r} must be a number of days, 2 or more")
            if not 0 < points <= 100_000:
                raise ValueError(f"streak_bonus for {days} days must be 1 to 100000 points")
        return value


class PointsConfig(Section):
    """Rules over every earning (sign-in, tasks): caps against abuse and expiry."""

    # At most this many points earned per member per local day (0: no cap). Over it: a clear
    # answer and no points. Operators' grants and refunds do not count.
    daily_cap: int = Field(0, ge=0)
    # Earned points expire this many days after they were earned (0: never); the sweeper
    # records the expiry, and "积分" warns of what expires within 30 days.
    expire_after_days: int = Field(0, ge=0, le=3650)


class Tier(Section):
    name: str = Field(min_length=1, max_length=16)
    # Lifetime points (all ever earned, spending does not lower it) from which this tier holds.
    min_points: int = Field(ge=0)


def _default_tiers() -> list[Tier]:
    return [Tier(name="白银", min_points=0), Tier(name="白金", min_points=500),
            Tier(name="黄金", min_points=2000), Tier(name="钻石", min_points=5000)]


class LevelsConfig(Section):
    """Game-like member levels by lifetime points; the first tier starts at 0."""

    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1, max_length=20)
    # Also congratulate in the group where the level-up happened.
    announce_in_group: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> "LevelsConfig":
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
    koc_types: list[KOC_TYPES] = Field(default_factory=list)


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
    def _window(self) -> "RewardConfig":
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


class LeaderboardConfig(Section):
    """Leaderboards by points earned in a week (from Monday) or month, per group and overall."""

    # How many members a leaderboard and a winners announcement show.
    top_n: int = Field(3, ge=1, le=50)
    # Post each group's winners of the week that ended / the month that ended.
    announce_weekly: bool = True
    announce_monthly: bool = True
    # Local hour (in [checkin] timezone) on the first day of the next period to post them.
    announce_hour: int = Field(10, ge=0, le=23)


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
    def _ordered(self) -> "LifecycleConfig":
        if not self.engaged_days <= self.core_days <= self.window_days:
            raise ValueError("engaged_days <= core_days <= window_days")
        return self
