"""``[points]``: rules over every earning (sign-in, tasks): caps against abuse, and expiry."""
from __future__ import annotations

from pydantic import Field

from bot.config import Section, Setting


class PointsConfig(Section):
    """Rules over every earning (sign-in, tasks): caps against abuse and expiry."""

    # At most this many points earned per member per local day (0: no cap). Over it: a clear
    # answer and no points. Operators' grants and refunds do not count.
    daily_cap: int = Field(0, ge=0)
    # Earned points expire this many days after they were earned (0: never); a job records
    # the expiry, and "积分" warns of what expires within 30 days.
    expire_after_days: int = Field(0, ge=0, le=3650)


POINTS = Setting("points", PointsConfig)
