"""``[robot]``: a WeCom group robot in the operators' internal group; reports and alerts go there."""
from __future__ import annotations

import re

from pydantic import Field, model_validator

from bot.config import Section, Setting


class RobotConfig(Section):
    """A WeCom group robot in the operators' internal group: reports and alerts go there."""

    enabled: bool = False
    # The robot's webhook key (the key= of its webhook URL). A secret: prefer SIYU_ROBOT_KEY.
    key: str = ""
    # The name siyu gives that group in the outbox (messages to chat "ops" on channel robot).
    chat: str = Field("ops", min_length=1, max_length=64)
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    # Local time of the daily report ("" for none).
    daily_report_at: str = "09:00"
    # Alert when a broadcast ends with failed groups, and when KOC applications wait for review.
    alerts: bool = True

    @model_validator(mode="after")
    def _key(self) -> RobotConfig:
        if self.enabled and not self.key:
            raise ValueError("required when [robot] enabled = true: key (or SIYU_ROBOT_KEY)")
        if self.daily_report_at and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.daily_report_at):
            raise ValueError('daily_report_at is a local time "HH:MM", or ""')
        return self


ROBOT = Setting("robot", RobotConfig)
