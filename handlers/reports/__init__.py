"""Reports for operators: ``/stats``, and through the group robot (``[robot]``) the daily report
and alerts (KOC applications waiting, broadcasts that ended with failures), each said once."""
from __future__ import annotations

from bot.feature import Feature
from handlers.reports import robot
from handlers.reports.routes import router

feature = Feature("reports", texts=Feature.texts_beside(__file__), routers=lambda config: [router], jobs=robot.jobs)
