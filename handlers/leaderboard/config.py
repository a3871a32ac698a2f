"""``[leaderboard]``: leaderboards by points earned in a week (from Monday) or month, per group
and overall, and the winners posted when a period ends."""
from __future__ import annotations

from pydantic import Field

from bot.config import Section, Setting


class LeaderboardConfig(Section):
    """Leaderboards by points earned in a week (from Monday) or month, per group and overall."""

    # How many members a leaderboard and a winners announcement show.
    top_n: int = Field(3, ge=1, le=50)
    # Post each group's winners of the week that ended / the month that ended.
    announce_weekly: bool = True
    announce_monthly: bool = True
    # Local hour (in [community] timezone) on the first day of the next period to post them.
    announce_hour: int = Field(10, ge=0, le=23)


LEADERBOARD = Setting("leaderboard", LeaderboardConfig)
