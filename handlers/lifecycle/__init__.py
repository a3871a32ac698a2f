"""Lifecycle stages (泛用户 / 精准用户 / 核心用户 / 超级用户), kept on each member by a job for
operators to see (``/member``) and count (``/stages``)."""
from __future__ import annotations

from bot.feature import Feature
from bot.jobs import Job
from handlers.lifecycle.config import LIFECYCLE
from handlers.lifecycle.stages import refresh, router

feature = Feature("lifecycle", settings=(LIFECYCLE,), texts=Feature.texts_beside(__file__),
                  routers=lambda config: [router], jobs=lambda config: [Job("lifecycle", refresh, every_s=600.0)])
