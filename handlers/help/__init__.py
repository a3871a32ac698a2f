"""Help: ``/help`` (the commands the sender may use) and the one-to-one fallback."""
from __future__ import annotations

from bot.feature import Feature
from handlers.help.routes import router

feature = Feature("help", texts=Feature.texts_beside(__file__), routers=lambda config: [router])
