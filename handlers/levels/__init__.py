"""Member levels (等级): game-like tiers by lifetime points, told when a member moves up."""
from __future__ import annotations

from bot.feature import Feature
from handlers.levels.config import LEVELS
from handlers.levels.routes import router

feature = Feature("levels", settings=(LEVELS,), texts=Feature.texts_beside(__file__), routers=lambda config: [router])
