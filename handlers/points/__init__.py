"""Points (积分): the member's balance and ledger, operators' grants, the earning rules other
features credit through (``handlers.points.services``), and expiry."""
from __future__ import annotations

from bot.feature import Feature
from handlers.points import jobs
from handlers.points.config import POINTS
from handlers.points.routes import router

feature = Feature("points", settings=(POINTS,), texts=Feature.texts_beside(__file__),
                  routers=lambda config: [router], jobs=jobs.jobs)
