"""Leaderboards (排行) by points earned in a week or month, per group and overall; each group's
winners posted when a period ends; {leaderboard} in broadcasts."""
from __future__ import annotations

from bot.feature import Feature
from bot.jobs import Job
from handlers.broadcasts.services import TEMPLATE_VALUES
from handlers.leaderboard.config import LEADERBOARD
from handlers.leaderboard.routes import PLACEHOLDERS, router
from handlers.leaderboard.winners import announce_winners

feature = Feature("leaderboard", settings=(LEADERBOARD,), texts=Feature.texts_beside(__file__),
                  routers=lambda config: [router], jobs=lambda config: [Job("winners", announce_winners, every_s=60.0)],
                  hooks={TEMPLATE_VALUES: PLACEHOLDERS})
