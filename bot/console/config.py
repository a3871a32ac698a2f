"""``[console]``: the operators' web console and the rollups behind its numbers."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot.config import Section, Setting


class ConsoleUser(Section):
    # Who signs in (the audit trail names them console:<name>) and with what password: at least
    # 12 characters, a secret (keep it out of git). The role works as for chat commands.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=12, max_length=256)
    role: Literal["viewer", "operator", "admin"] = "operator"


class ConsoleConfig(Section):
    """The console under /console: no user, no sign-in (the pages say how to add one)."""

    enabled: bool = True
    users: list[ConsoleUser] = Field(default_factory=list)
    # Signs the session cookie: at least 32 characters. Empty: a random key per process, so
    # sessions end at a restart; several processes behind one address need the same key.
    secret: str = Field("", max_length=256)
    session_hours: int = Field(12, ge=1, le=720)
    # Send the cookie over HTTPS only (behind a TLS-terminating proxy, as in production).
    secure_cookie: bool = False
    # How often the rollup job refreshes today's numbers (the pages read the rollups).
    rollup_every_s: float = Field(300.0, ge=10, le=86_400)
    # A group is "near its size limit" at 90% of this (WeCom customer groups: 500 members).
    group_size_limit: int = Field(500, ge=2, le=100_000)
    # The overview's default date range, in days.
    default_days: int = Field(30, ge=1, le=366)

    @model_validator(mode="after")
    def _valid(self) -> ConsoleConfig:
        if self.secret and len(self.secret) < 32:
            raise ValueError("secret must be at least 32 characters (or empty for a random one per process)")
        if len({u.name for u in self.users}) != len(self.users):
            raise ValueError("console user names must be distinct")
        return self


CONSOLE = Setting("console", ConsoleConfig)
