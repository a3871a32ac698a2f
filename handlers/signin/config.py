"""``[signin]``: the daily sign-in (签到). Formerly ``[checkin]``, still read with a warning."""
from __future__ import annotations

from pydantic import Field, field_validator

from bot.config import Section, Setting


class SigninConfig(Section):
    enabled: bool = True
    # What a member sends (in a group or one-to-one) to sign in.
    keyword: str = Field("签到", min_length=1, max_length=32)
    daily_points: int = Field(10, ge=0, le=100_000)
    # Extra points on reaching a streak of N days in a row: {"7" = 50, "30" = 200}.
    streak_bonus: dict[str, int] = Field(default_factory=lambda: {"7": 50, "30": 200})
    # In a group, confirmations wait up to this many seconds and go out as one message naming
    # everyone who signed in meanwhile (a group hears the bot [outbox] group_rate_per_min times
    # a minute at most); 0: each sign-in answered at once on its own line.
    group_digest_s: float = Field(3.0, ge=0, le=60)

    @field_validator("streak_bonus")
    @classmethod
    def _bonus(cls, value: dict[str, int]) -> dict[str, int]:
        for days, points in value.items():
            if not days.isdigit() or int(days) < 2:
                raise ValueError(f"streak_bonus key {days!r} must be a number of days, 2 or more")
            if not 0 < points <= 100_000:
                raise ValueError(f"streak_bonus for {days} days must be 1 to 100000 points")
        return value


SIGNIN = Setting("signin", SigninConfig)
# Where the keys of the old [checkin] section went (read with a deprecation warning).
MOVED = {"checkin.timezone": "community.timezone", "checkin": "signin",
         **{f"texts.checkin_{k}": f"texts.signin_{k}" for k in ("done", "bonus", "already", "capped")}}
