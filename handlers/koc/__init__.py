"""KOC screening (申请KOC): a one-to-one conversation that scores a member and proposes one of
the four KOC types (分享官, 内容官, 体验官, 带货官) for an operator to approve."""
from __future__ import annotations

from bot.config import Config
from bot.feature import Feature
from bot.middlewares import Middleware
from flows.engine import Flow
from handlers.koc import screening
from handlers.koc.config import KOC
from handlers.koc.routes import invite_the_active, router


def middlewares(config: Config) -> list[Middleware]:
    settings = config[KOC]
    return [invite_the_active] if settings.enabled and settings.activity_threshold else []


def flows(config: Config) -> list[Flow]:
    return [screening.build(config)] if config[KOC].enabled else []


feature = Feature("koc", settings=(KOC,), texts=Feature.texts_beside(__file__), routers=lambda config: [router(config)],
                  middlewares=middlewares, flows=flows)
