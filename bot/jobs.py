"""Periodic jobs: work due by the clock (winners of the week, polls closing, lifecycle stages)
that the sweeper runs every ``every_s``. Each job guards itself against running twice (a key
claimed with its messages, a conditional update), so a restart or a second process repeats
nothing. The scheduler of issue 6 takes these over when it lands."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.config import Config
from bot.texts import Texts
from storage.engine import Database

JobRun = Callable[[Database, Config, Texts, datetime], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    """``run(db, config, texts, now)`` does what is due and returns how much it did."""

    name: str
    run: JobRun
    every_s: float = 60.0
